r"""How good is a predicted weight vector? Direction, agreement and accuracy metrics (chapters 05 and 07).

All take leading batch dimensions and return one number per task, shape (...).
"""

from __future__ import annotations

import numpy as np

from .checks import as_float, check_context, check_positive


def _unit(w) -> np.ndarray:
    norm = np.linalg.norm(w, axis=-1, keepdims=True)
    return w / np.where(norm > 0, norm, 1.0)


def cosine(u, v) -> np.ndarray:
    r"""Cosine similarity :math:`\langle u, v\rangle / (\|u\|\|v\|)`; 0 where either is zero. Shapes (..., d) -> (...)."""
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    return np.sum(_unit(u) * _unit(v), axis=-1)


def normalized_difference(u, v) -> np.ndarray:
    r"""Direction gap :math:`\| u/\|u\| - v/\|v\| \|` (paper Fig. 8); shapes (..., d) -> (...), in [0, 2]."""
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    return np.linalg.norm(_unit(u) - _unit(v), axis=-1)


def relative_difference(u, v) -> np.ndarray:
    r"""Relative gap :math:`\|u - v\| / \max(\|v\|, \epsilon)` per task; shapes (..., d) -> (...)."""
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    return np.linalg.norm(u - v, axis=-1) / np.maximum(np.linalg.norm(v, axis=-1), np.finfo(float).tiny)


def accuracy(w, X, y) -> np.ndarray:
    r"""Fraction of points with :math:`\mathrm{sign}\langle w, x_i\rangle = y_i` (a tie counts as +1).

    Parameters
    ----------
    w : ndarray of shape (..., d)
    X : ndarray of shape (..., n, d), e.g. held-out points from :func:`ngdformer.sample_points`
    y : ndarray of shape (..., n)

    Returns
    -------
    acc : ndarray of shape (...)
    """
    w, X, y = check_context(w, X, y)
    pred = np.where(np.einsum("...nd,...d->...n", X, w) >= 0, 1.0, -1.0)
    return np.mean(pred == y, axis=-1)


def moving_average(a, k: int) -> np.ndarray:
    r"""Mean over each window of ``k`` consecutive entries, :math:`\bar a_t = \frac1k\sum_{s=t}^{t+k-1} a_s`.

    Smooths a per-step training loss for plotting (chapters 06, 08). Shape (T,) -> (T - k + 1,).
    """
    a = as_float("a", a, ndim_min=1)
    check_positive("k", k, integer=True)
    if k > a.shape[-1]:
        raise ValueError(f"window k = {k} is longer than the series ({a.shape[-1]} entries)")
    return np.convolve(a, np.ones(k) / k, mode="valid")
