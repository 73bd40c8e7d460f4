r"""The package's gradient checker: central differences in float64 (chapters 01 and 03; tests).

A hand-derived gradient ``g`` of a scalar function ``f`` passes when, along random
directions ``v``,

.. math:: \Big|\frac{f(x + hv) - f(x - hv)}{2h} - \langle g, v\rangle\Big| \le
          10^{-6} + 10^{-5} |\langle g, v\rangle|, \qquad h = 10^{-6}.

For tiny shapes :func:`numeric_jacobian` builds the whole Jacobian column by column.
With float64 and h = 1e-6, a correct gradient typically shows errors of 1e-10..1e-8.

A check never passes by accident: a NaN or an infinity on either side (an overflowing
loss, a gradient that is NaN) counts as an error of ``inf`` in :func:`gradient_errors`,
:func:`assert_gradients_close` and :func:`rel_error`, so both ``err <= tol`` and
``err > tol`` flag it.
"""

from __future__ import annotations

import numpy as np

from .checks import MAX_DEPTH, InputTypeError, as_float, check_generator, check_positive, check_size

ATOL, RTOL, H = 1e-6, 1e-5, 1e-6


def _real(name: str, a) -> np.ndarray:
    """``a`` as a float64 array, NaN and inf allowed (they are what a checker must catch)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"{name} must be real numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _broadcast(a: np.ndarray, b: np.ndarray, names: str = "a, b") -> tuple:
    """The broadcast shape of two arrays; a ``ValueError`` naming both shapes if there is none."""
    first, second = names.split(", ")
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{first} has shape {a.shape} and {second} has shape {b.shape}: "
                         "they do not broadcast") from None


def _check_point(f, x, h) -> np.ndarray:
    """Validate a callable, a finite non-empty point and the step; return the point in float64."""
    if not callable(f):
        raise InputTypeError(f"the function to differentiate must be callable, got {type(f).__name__}")
    x = as_float("x", x).astype(np.float64)
    if x.size == 0:
        raise ValueError(f"x must have at least one entry, got shape {x.shape}")
    check_positive("h", h)
    return x


def _scalar(value) -> float:
    """The value of a scalar function, refusing an array of several entries."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"f must return a real scalar, got {type(value).__name__} of shape {arr.shape}")
    return float(arr.reshape(-1)[0])


def _central(f, x, v, h) -> float:
    """(f(x + hv) - f(x - hv)) / 2h on checked input."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: the NaN is the answer, scored inf later
        return (_scalar(f(x + h * v)) - _scalar(f(x - h * v))) / (2.0 * h)


def directional_derivative(f, x, v, h: float = H) -> float:
    r"""Central-difference derivative of a scalar function ``f`` at ``x`` along ``v``.

    .. math:: \frac{f(x + hv) - f(x - hv)}{2h}

    Parameters
    ----------
    f : callable, ndarray of ``x``'s shape -> scalar.
    x : ndarray of any shape, the point (finite, converted to float64).
    v : ndarray of ``x``'s shape, the direction (finite).
    h : float > 0, the step (default 1e-6).

    Returns
    -------
    dfdv : float, the numeric directional derivative; NaN or inf where ``f`` is not finite
        (:func:`gradient_errors` scores that as a failure).
    """
    x = _check_point(f, x, h)
    v = as_float("v", v).astype(np.float64)
    if v.shape != x.shape:
        raise ValueError(f"v has shape {v.shape} but x has shape {x.shape}; the direction must have the point's shape")
    return _central(f, x, v, h)


def check_directions(f, x, grad, rng: np.random.Generator, directions: int = 3, h: float = H):
    r"""Numeric and analytic directional derivatives along random unit directions.

    .. math:: \text{num}_k = \frac{f(x + hv_k) - f(x - hv_k)}{2h}, \qquad \text{ana}_k = \langle g, v_k\rangle

    Parameters
    ----------
    f : callable, ndarray of ``x``'s shape -> scalar.
    x : ndarray of any shape, the point (finite, at least one entry, converted to float64).
    grad : ndarray of ``x``'s shape, the hand-derived gradient g at ``x``. A NaN or inf in ``grad``
        is not refused: it makes the analytic derivatives non-finite, which the check then fails.
    rng : np.random.Generator, draws the directions.
    directions : int >= 1, the number of random unit directions v_k (default 3).
    h : float > 0, the central-difference step (default 1e-6).

    Returns
    -------
    num : ndarray of shape (directions,), the numeric directional derivatives.
    ana : ndarray of shape (directions,), the analytic ones :math:`\langle g, v_k\rangle`; every
        entry inf or NaN where ``grad`` has a non-finite entry (:func:`gradient_errors` scores it inf).
    """
    x = _check_point(f, x, h)
    grad = _real("grad", grad)
    if grad.shape != x.shape:
        raise ValueError(f"grad has shape {grad.shape} but x has shape {x.shape}; a gradient has its point's shape")
    check_generator(rng)
    check_positive("directions", directions, integer=True, maximum=MAX_DEPTH)
    num, ana = np.zeros(directions), np.zeros(directions)
    for k in range(directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        num[k] = _central(f, x, v, h)
        with np.errstate(invalid="ignore", over="ignore"):  # a non-finite gradient gives a non-finite ana
            ana[k] = np.sum(grad * v)
    return num, ana


def numeric_jacobian(F, x, h: float = H) -> np.ndarray:
    r"""Full Jacobian of an array function by central differences, one input entry at a time.

    .. math:: J_{\cdot k} = \frac{F(x + h e_k) - F(x - h e_k)}{2h}

    Parameters
    ----------
    F : callable, ndarray of ``x``'s shape -> ndarray (or scalar) of a fixed shape.
    x : ndarray of any shape, the point (finite, at least one entry, converted to float64); tiny shapes only.
    h : float > 0, the step (default 1e-6).

    Returns
    -------
    J : ndarray of shape ``F(x).shape + x.shape``, :math:`J[i, k] = \partial F_i / \partial x_k`.
    """
    x = _check_point(F, x, h)
    out_shape = np.shape(F(x))
    check_size("the Jacobian", out_shape + x.shape)
    J = np.zeros((int(np.prod(out_shape)), x.size))
    for k in range(x.size):  # one column per input entry: tiny shapes only
        e = np.zeros(x.size)
        e[k] = h
        e = e.reshape(x.shape)
        plus, minus = _real("F(x)", F(x + e)), _real("F(x)", F(x - e))
        if plus.shape != out_shape or minus.shape != out_shape:
            raise ValueError(f"F returned shape {plus.shape} at a moved point but {out_shape} at x")
        with np.errstate(invalid="ignore", over="ignore"):
            J[:, k] = (plus.ravel() - minus.ravel()) / (2.0 * h)
    return J.reshape(out_shape + x.shape)


def gradient_errors(num, ana) -> np.ndarray:
    r"""Error of each derivative relative to the allowed tolerance; a check passes where it is <= 1.

    .. math:: \frac{|\text{num} - \text{ana}|}{10^{-6} + 10^{-5}|\text{ana}|}

    An entry where ``num`` or ``ana`` is NaN or infinite gets ``inf`` (never a pass).

    Parameters
    ----------
    num : ndarray, numeric derivatives (e.g. from :func:`check_directions`).
    ana : ndarray, analytic derivatives; broadcasts with ``num``.

    Returns
    -------
    err : ndarray, the broadcast shape of ``num`` and ``ana``, >= 0 (``inf`` at non-finite entries).
    """
    num, ana = _real("num", num), _real("ana", ana)
    _broadcast(num, ana, "num, ana")
    finite = np.isfinite(num) & np.isfinite(ana)
    with np.errstate(invalid="ignore", over="ignore"):  # the non-finite entries are replaced just below
        err = np.abs(num - ana) / (ATOL + RTOL * np.abs(ana))
    return np.where(finite, err, np.inf)


def assert_gradients_close(num, ana, what: str = "gradient") -> None:
    """Raise ``AssertionError`` unless every entry passes :func:`gradient_errors`.

    The message names the worst entry: its numeric and analytic values and their difference.
    A NaN or inf on either side fails. Arrays of different shapes or without entries are a
    ``ValueError`` (nothing would be compared entry by entry).

    Parameters
    ----------
    num : ndarray, numeric derivatives.
    ana : ndarray, analytic derivatives, the shape of ``num``.
    what : str, the name of the checked quantity, used in the message (default "gradient").

    Returns
    -------
    None
    """
    if not isinstance(what, str):
        raise InputTypeError(f"what must be a string naming the checked quantity, got {what!r}")
    num, ana = _real("num", num), _real("ana", ana)
    if num.shape != ana.shape:
        raise ValueError(f"{what}: num has shape {num.shape} but ana has shape {ana.shape}; they must be equal")
    if num.size == 0:
        raise ValueError(f"{what}: num and ana are empty (shape {num.shape}); there is nothing to check")
    err = gradient_errors(num, ana)
    if np.any(err > 1.0):
        k = int(np.argmax(err))
        a, b = num.ravel()[k], ana.ravel()[k]
        detail = f"|diff| = {abs(a - b):.3e}" if np.isfinite(a) and np.isfinite(b) else "not finite"
        raise AssertionError(f"{what}: numeric {a!r} vs analytic {b!r} ({detail})")


def rel_error(a, b) -> float:
    r"""Relative error of two arrays, symmetric in ``a`` and ``b``; 0 when both are zero.

    .. math:: \max|a - b| / \max(\max|a|, \max|b|)

    So one array zero and the other not gives 1, whichever is which. A NaN or inf in either
    array gives ``inf``: a test asserting ``rel_error(a, b) <= tol`` then fails, and so does
    a check raising when ``rel_error(a, b) > tol``.

    Parameters
    ----------
    a : ndarray of any shape.
    b : ndarray broadcasting with ``a``.

    Returns
    -------
    err : float, >= 0, or ``inf`` if either array has a non-finite entry.
    """
    a, b = _real("a", a), _real("b", b)
    _broadcast(a, b)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    if scale == 0:
        return 0.0
    with np.errstate(over="ignore"):
        diff = np.max(np.abs(a - b), initial=0.0)
    if not np.isfinite(diff):  # a - b overflowed (entries near the float64 limit): divide first
        return float(np.max(np.abs(a / scale - b / scale)))
    return float(diff / scale)
