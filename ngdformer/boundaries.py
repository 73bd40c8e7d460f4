r"""Pictures of linear classifiers through the origin in 2-D, and the margin fraction (chapters 05 and 09).

A weight vector :math:`w \in \mathbb{R}^2` classifies by :math:`\mathrm{sign}\langle w, x\rangle`;
its decision boundary is the line :math:`\{x : \langle w, x\rangle = 0\}`, spanned by
:math:`w^\perp = (-w_2, w_1)`.
"""

from __future__ import annotations

import numpy as np

from .checks import MAX_ELEMENTS, as_float, check_context, check_positive
from .directions import _unit_rows
from .solvers import normalized_margin


def separator_segment(w, radius: float) -> np.ndarray:
    r"""End points of the decision line :math:`\langle w, x\rangle = 0` inside the disc of radius ``radius``.

    .. math:: x_\pm = \pm\, r\, \frac{(-w_2,\ w_1)}{\|w\|}

    Parameters
    ----------
    w : ndarray of shape (..., 2), the classifier(s), finite, non-zero rows (of any magnitude).
    radius : float > 0, the radius r of the disc (half the segment's length).

    Returns
    -------
    seg : ndarray of shape (..., 2, 2); ``seg[..., k, :]`` is the k-th end point, so
        ``plt.plot(*seg.T)`` draws the line for a single ``w``.
    """
    w = as_float("w", w, ndim_min=1)
    check_positive("radius", radius)
    if w.shape[-1] != 2:
        raise ValueError(f"w must have 2 entries in its last dimension, got shape {w.shape}")
    unit = _unit_rows("w", w)  # (..., 2); refuses a zero row: w = 0 has no decision line
    perp = np.stack([-unit[..., 1], unit[..., 0]], axis=-1)  # (..., 2) unit direction of the line
    return radius * np.stack([-perp, perp], axis=-2)  # (..., 2, 2)


#: Largest ``num`` of :func:`decision_grid`: ``num**2`` grid points stay within MAX_ELEMENTS.
MAX_GRID = int(np.sqrt(MAX_ELEMENTS))


def decision_grid(w, lim: float, num: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Scores :math:`\langle w, x\rangle` on a square grid :math:`[-\text{lim}, \text{lim}]^2`, for ``contourf``.

    Parameters
    ----------
    w : ndarray of shape (2,), the classifier, finite.
    lim : float > 0, half-width of the square; the largest score :math:`(|w_1| + |w_2|)\,\text{lim}`
        must be a finite float64.
    num : int, 2 <= num <= MAX_GRID (16384), grid points per axis (default 101).

    Returns
    -------
    xx : ndarray of shape (num, num), first coordinate of each grid point (``np.meshgrid``).
    yy : ndarray of shape (num, num), second coordinate of each grid point.
    score : ndarray of shape (num, num), :math:`w_1 xx + w_2 yy`.
    """
    w = as_float("w", w, ndim_min=1)
    if w.shape != (2,):
        raise ValueError(f"w must have shape (2,), got {w.shape}")
    check_positive("lim", lim)
    check_positive("num", num, integer=True, maximum=MAX_GRID)
    if num < 2:
        raise ValueError(f"num must be >= 2, got {num}")
    if float(np.abs(w).max()) * 2.0 * float(lim) > np.finfo(np.float64).max:  # Python floats: inf, no warning
        raise ValueError(f"w = {w.tolist()} and lim = {lim!r} are too large: the scores (|w_1| + |w_2|) lim "
                         "would overflow float64")
    t = np.linspace(-lim, lim, num)
    xx, yy = np.meshgrid(t, t)
    return xx, yy, w[0] * xx + w[1] * yy


def margin_fraction(w, X, y, w_ref) -> np.ndarray:
    r"""Normalized margin of ``w`` as a fraction of that of ``w_ref`` (usually the max-margin solution).

    .. math:: \frac{\gamma(w)}{\gamma(w_{\text{ref}})}, \qquad \gamma(w) = \frac{\min_i y_i\langle w, x_i\rangle}{\|w\|}

    Equal to 1 exactly when ``w`` points along the max-margin direction (for ``w_ref = w_mm``);
    negative while ``w`` misclassifies a context point.

    Parameters
    ----------
    w : ndarray of shape (..., B, d), the classifiers, e.g. a (T, B, d) trajectory.
    X : ndarray of shape (B, n, d), the context inputs x_i.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w_ref : ndarray of shape (B, d), the reference (usually ``max_margin(X, y)``), with a positive
        normalized margin on every task.

    Returns
    -------
    fraction : ndarray of shape (..., B), at most 1 when ``w_ref`` is the max-margin solution.

    Raises
    ------
    ValueError
        if ``w_ref`` has a normalized margin <= 0 on some task, or one so small that the fraction overflows.
    """
    w, X, y = check_context(w, X, y)
    w_ref = as_float("w_ref", w_ref, ndim_min=1)
    try:
        np.broadcast_shapes(w_ref.shape[:-1], X.shape[:-2])
        ok = w_ref.shape[-1] == X.shape[-1]
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"w_ref has shape {w_ref.shape} but X has shape {X.shape}; expected "
                         f"w_ref.shape == {X.shape[:-2] + X.shape[-1:]} (or leading dimensions that broadcast)")
    ref = normalized_margin(w_ref, X, y)
    if np.any(ref <= 0):
        raise ValueError("w_ref must have a positive normalized margin on every task (is it the max-margin solution?)")
    with np.errstate(over="ignore"):  # checked just below
        fraction = normalized_margin(w, X, y) / ref
    if not np.all(np.isfinite(fraction)):
        raise ValueError(f"w_ref's normalized margin (smallest {float(ref.min()):.3g}) is too small: "
                         "the fraction overflows")
    return fraction
