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
    r"""Central difference :math:`(f(x + hv) - f(x - hv)) / 2h` of a scalar function."""
    x = np.asarray(x, dtype=np.float64)
    return float((f(x + h * v) - f(x - h * v)) / (2.0 * h))


def check_directions(f, x, grad, rng: np.random.Generator, directions: int = 3, h: float = H):
    """Numeric and analytic directional derivatives along random unit directions.

    Parameters
    ----------
    f : callable, array of ``x``'s shape -> float
    x : ndarray, the point
    grad : ndarray of ``x``'s shape, the hand-derived gradient at ``x``
    rng : np.random.Generator for the directions

    Returns
    -------
    num, ana : ndarray of shape (directions,)
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
    """Full Jacobian of an array function by central differences, shape ``F(x).shape + x.shape``."""
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
    r"""Excess error :math:`|num - ana| / (10^{-6} + 10^{-5}|ana|)`; a check passes where it is <= 1."""
    num, ana = np.asarray(num), np.asarray(ana)
    return np.abs(num - ana) / (ATOL + RTOL * np.abs(ana))


def assert_gradients_close(num, ana, what: str = "gradient") -> None:
    """Raise ``AssertionError`` unless every entry passes :func:`gradient_errors`."""
    err = gradient_errors(num, ana)
    if np.any(err > 1.0):
        k = int(np.argmax(err))
        raise AssertionError(f"{what}: numeric {np.ravel(num)[k]!r} vs analytic {np.ravel(ana)[k]!r} "
                             f"(|diff| = {abs(np.ravel(num)[k] - np.ravel(ana)[k]):.3e})")


def rel_error(a, b) -> float:
    r"""Relative error :math:`\max|a - b| / \max(\max|a|, \max|b|)` (0 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(a - b), initial=0.0) / scale) if scale > 0 else 0.0
