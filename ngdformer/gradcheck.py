r"""The package's gradient checker: central differences in float64 (chapters 01 and 03; tests).

A hand-derived gradient ``g`` of a scalar function ``f`` passes when, along random
directions ``v``,

.. math:: \Big|\frac{f(x + hv) - f(x - hv)}{2h} - \langle g, v\rangle\Big| \le
          10^{-6} + 10^{-5} |\langle g, v\rangle|, \qquad h = 10^{-6}.

For tiny shapes :func:`numeric_jacobian` builds the whole Jacobian column by column.
With float64 and h = 1e-6, a correct gradient typically shows errors of 1e-10..1e-8.
"""

from __future__ import annotations

import numpy as np

ATOL, RTOL, H = 1e-6, 1e-5, 1e-6


def directional_derivative(f, x, v, h: float = H) -> float:
    r"""Central-difference derivative of a scalar function ``f`` at ``x`` along ``v``.

    .. math:: \frac{f(x + hv) - f(x - hv)}{2h}

    Parameters
    ----------
    f : callable, ndarray of ``x``'s shape -> scalar.
    x : ndarray of any shape, the point (converted to float64).
    v : ndarray of ``x``'s shape, the direction.
    h : float, the step (default 1e-6).

    Returns
    -------
    dfdv : float, the numeric directional derivative.
    """
    x = np.asarray(x, dtype=np.float64)
    return float((f(x + h * v) - f(x - h * v)) / (2.0 * h))


def check_directions(f, x, grad, rng: np.random.Generator, directions: int = 3, h: float = H):
    r"""Numeric and analytic directional derivatives along random unit directions.

    .. math:: \text{num}_k = \frac{f(x + hv_k) - f(x - hv_k)}{2h}, \qquad \text{ana}_k = \langle g, v_k\rangle

    Parameters
    ----------
    f : callable, ndarray of ``x``'s shape -> scalar.
    x : ndarray of any shape, the point (converted to float64).
    grad : ndarray of ``x``'s shape, the hand-derived gradient g at ``x``.
    rng : np.random.Generator, draws the directions.
    directions : int, the number of random unit directions v_k (default 3).
    h : float, the central-difference step (default 1e-6).

    Returns
    -------
    num : ndarray of shape (directions,), the numeric directional derivatives.
    ana : ndarray of shape (directions,), the analytic ones :math:`\langle g, v_k\rangle`.
    """
    x = np.asarray(x, dtype=np.float64)
    num, ana = [], []
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        num.append(directional_derivative(f, x, v, h))
        ana.append(float(np.sum(grad * v)))
    return np.array(num), np.array(ana)


def numeric_jacobian(F, x, h: float = H) -> np.ndarray:
    r"""Full Jacobian of an array function by central differences, one input entry at a time.

    .. math:: J_{\cdot k} = \frac{F(x + h e_k) - F(x - h e_k)}{2h}

    Parameters
    ----------
    F : callable, ndarray of ``x``'s shape -> ndarray (or scalar).
    x : ndarray of any shape, the point (converted to float64); tiny shapes only.
    h : float, the step (default 1e-6).

    Returns
    -------
    J : ndarray of shape ``F(x).shape + x.shape``, :math:`J[i, k] = \partial F_i / \partial x_k`.
    """
    x = np.asarray(x, dtype=np.float64)
    out_shape = np.shape(F(x))
    J = np.zeros((int(np.prod(out_shape)), x.size))
    for k in range(x.size):  # one column per input entry: tiny shapes only
        e = np.zeros(x.size)
        e[k] = h
        e = e.reshape(x.shape)
        J[:, k] = (np.ravel(F(x + e)) - np.ravel(F(x - e))) / (2.0 * h)
    return J.reshape(out_shape + x.shape)


def gradient_errors(num, ana) -> np.ndarray:
    r"""Error of each derivative relative to the allowed tolerance; a check passes where it is <= 1.

    .. math:: \frac{|\text{num} - \text{ana}|}{10^{-6} + 10^{-5}|\text{ana}|}

    Parameters
    ----------
    num : ndarray, numeric derivatives (e.g. from :func:`check_directions`).
    ana : ndarray, analytic derivatives; broadcasts with ``num``.

    Returns
    -------
    err : ndarray, the broadcast shape of ``num`` and ``ana``, >= 0.
    """
    num, ana = np.asarray(num), np.asarray(ana)
    return np.abs(num - ana) / (ATOL + RTOL * np.abs(ana))


def assert_gradients_close(num, ana, what: str = "gradient") -> None:
    """Raise ``AssertionError`` unless every entry passes :func:`gradient_errors`.

    The message names the worst entry: its numeric and analytic values and their difference.

    Parameters
    ----------
    num : ndarray, numeric derivatives.
    ana : ndarray, analytic derivatives, the shape of ``num``.
    what : str, the name of the checked quantity, used in the message (default "gradient").

    Returns
    -------
    None
    """
    err = gradient_errors(num, ana)
    if np.any(err > 1.0):
        k = int(np.argmax(err))
        raise AssertionError(f"{what}: numeric {np.ravel(num)[k]!r} vs analytic {np.ravel(ana)[k]!r} "
                             f"(|diff| = {abs(np.ravel(num)[k] - np.ravel(ana)[k]):.3e})")


def rel_error(a, b) -> float:
    r"""Relative error of two arrays, 0 when both are zero.

    .. math:: \max|a - b| / \max(\max|a|, \max|b|)

    Parameters
    ----------
    a : ndarray of any shape.
    b : ndarray broadcasting with ``a``.

    Returns
    -------
    err : float, >= 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(a - b), initial=0.0) / scale) if scale > 0 else 0.0
