r"""How good is a predicted weight vector? Direction, agreement and accuracy metrics (chapters 05 and 07).

All take leading batch dimensions and return one number per task, shape (...). Each
vector is first rescaled by a power of two (exact in floating point) so that its largest
entry is about 1: the results are those of the textbook formulas, without overflow for
entries near the float limit (float32 included) and without underflow for tiny ones.
"""

from __future__ import annotations

import numpy as np

from .checks import as_float, check_context, check_positive


def _pair(u, v) -> tuple[np.ndarray, np.ndarray]:
    """Validate two stacks of vectors: finite, the same length d >= 1, leading dimensions that broadcast."""
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    ok = u.shape[-1] == v.shape[-1] and u.shape[-1] > 0
    try:
        np.broadcast_shapes(u.shape[:-1], v.shape[:-1])
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"u has shape {u.shape} but v has shape {v.shape}; expected vectors of the same length "
                         "d >= 1 (the last axis) with leading dimensions that broadcast")
    return u, v


def _exponent(a, axis=-1) -> np.ndarray:
    """The power of two e with max|a| in [2^(e-1), 2^e) along ``axis`` (0 for a zero vector), kept as an axis."""
    return np.frexp(np.max(np.abs(a), axis=axis, keepdims=True))[1]


def _unit(w) -> np.ndarray:
    w = np.ldexp(w, -_exponent(w))  # exact rescaling: the largest entry in [1/2, 1)
    norm = np.linalg.norm(w, axis=-1, keepdims=True)
    return w / np.where(norm > 0, norm, 1.0)


def cosine(u, v) -> np.ndarray:
    r"""Cosine similarity of two directions; 0 where either vector is zero.

    .. math:: \cos(u, v) = \langle u, v\rangle / (\|u\|\,\|v\|)

    Parameters
    ----------
    u : ndarray of shape (..., d), finite, for example predicted weights.
    v : ndarray of shape (..., d), finite, for example the reference (``w_star`` or ``w_mm``);
        leading dimensions broadcast with ``u``.

    Returns
    -------
    c : ndarray of shape (...), in [-1, 1].
    """
    u, v = _pair(u, v)
    return np.sum(_unit(u) * _unit(v), axis=-1)


def normalized_difference(u, v) -> np.ndarray:
    r"""Direction gap: the distance between the unit vectors of ``u`` and ``v`` (paper Fig. 8).

    .. math:: \Big\| \frac{u}{\|u\|} - \frac{v}{\|v\|} \Big\|

    A zero vector counts as the zero direction.

    Parameters
    ----------
    u : ndarray of shape (..., d), finite, for example predicted weights.
    v : ndarray of shape (..., d), finite, for example the reference (``w_star`` or ``w_mm``);
        leading dimensions broadcast with ``u``.

    Returns
    -------
    gap : ndarray of shape (...), in [0, 2].
    """
    u, v = _pair(u, v)
    return np.linalg.norm(_unit(u) - _unit(v), axis=-1)


def relative_difference(u, v) -> np.ndarray:
    r"""Relative gap of ``u`` from the reference ``v``, per task.

    .. math:: \|u - v\| / \|v\|

    Where the reference ``v`` is the zero vector the gap is 0 if ``u`` is zero too and
    ``inf`` otherwise (no finite number measures a change relative to nothing).

    Parameters
    ----------
    u : ndarray of shape (..., d), finite, for example predicted weights.
    v : ndarray of shape (..., d), finite, for example the reference (``w_star`` or ``w_mm``);
        leading dimensions broadcast with ``u``.

    Returns
    -------
    gap : ndarray of shape (...), >= 0 (``inf`` against a zero reference).
    """
    u, v = _pair(u, v)
    eu, ev = _exponent(u), _exponent(v)
    # one exact rescaling per task for both vectors (a zero vector must not set it), so u - v cannot overflow
    e = np.where(np.all(u == 0, axis=-1, keepdims=True), ev,
                 np.where(np.all(v == 0, axis=-1, keepdims=True), eu, np.maximum(eu, ev)))
    diff, v = np.ldexp(u, -e) - np.ldexp(v, -e), np.ldexp(v, -e)
    top, e_top = _scaled_norm(diff)  # each norm rescaled again, so a tiny v's squares do not underflow
    bottom, e_bottom = _scaled_norm(v)
    zero = bottom == 0
    with np.errstate(over="ignore"):  # a true gap above the float range is inf
        gap = np.ldexp(np.divide(top, np.where(zero, 1.0, bottom)), e_top - e_bottom)
    return np.where(zero, np.where(top == 0, 0.0, np.inf), gap)


def _scaled_norm(a) -> tuple[np.ndarray, np.ndarray]:
    """``(m, e)`` with ``norm(a, axis=-1) = m * 2**e``, computed on the exactly rescaled rows (no under/overflow)."""
    e = _exponent(a)
    return np.linalg.norm(np.ldexp(a, -e), axis=-1), e[..., 0]


def accuracy(w, X, y) -> np.ndarray:
    r"""Fraction of points with :math:`\mathrm{sign}\langle w, x_i\rangle = y_i` (a tie counts as +1).

    Parameters
    ----------
    w : ndarray of shape (..., d), the classifier(s).
    X : ndarray of shape (..., n, d), the points x_i, e.g. held-out points from :func:`ngdformer.sample_points`.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    acc : ndarray of shape (...), in [0, 1]; leading dimensions of ``w`` and ``X`` broadcast.
    """
    if w is None:
        raise ValueError("w must be given: the classifier(s) of shape (..., d) whose accuracy is measured")
    w, X, y = check_context(w, X, y)
    w, X = np.ldexp(w, -_exponent(w)), np.ldexp(X, -_exponent(X))  # exact: the signs of <w, x_i> do not change
    pred = np.where(np.einsum("...nd,...d->...n", X, w) >= 0, 1.0, -1.0)
    return np.mean(pred == y, axis=-1)


def moving_average(a, k: int) -> np.ndarray:
    r"""Mean over each window of ``k`` consecutive entries (chapters 06, 08).

    .. math:: \bar a_t = \frac1k\sum_{s=t}^{t+k-1} a_s

    Smooths a per-step training loss for plotting.

    Parameters
    ----------
    a : ndarray of shape (T,), the series (finite), e.g. one loss per training step.
    k : int, the window length, 1 <= k <= T.

    Returns
    -------
    a_bar : ndarray of shape (T - k + 1,), the window means.
    """
    a = as_float("a", a, ndim_min=1)
    check_positive("k", k, integer=True)
    if a.ndim != 1:
        raise ValueError(f"a must be one series of shape (T,), got shape {a.shape}")
    if k > a.shape[-1]:
        raise ValueError(f"window k = {k} is longer than the series ({a.shape[-1]} entries)")
    return np.convolve(a, np.ones(k) / k, mode="valid")
