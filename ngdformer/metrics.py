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
    r"""Cosine similarity of two directions; 0 where either vector is zero.

    .. math:: \cos(u, v) = \langle u, v\rangle / (\|u\|\,\|v\|)

    Parameters
    ----------
    u : ndarray of shape (..., d), for example predicted weights.
    v : ndarray of shape (..., d), for example the reference (``w_star`` or ``w_mm``);
        leading dimensions broadcast with ``u``.

    Returns
    -------
    c : ndarray of shape (...), in [-1, 1].
    """
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    return np.sum(_unit(u) * _unit(v), axis=-1)


def normalized_difference(u, v) -> np.ndarray:
    r"""Direction gap: the distance between the unit vectors of ``u`` and ``v`` (paper Fig. 8).

    .. math:: \Big\| \frac{u}{\|u\|} - \frac{v}{\|v\|} \Big\|

    A zero vector counts as the zero direction.

    Parameters
    ----------
    u : ndarray of shape (..., d), for example predicted weights.
    v : ndarray of shape (..., d), for example the reference (``w_star`` or ``w_mm``);
        leading dimensions broadcast with ``u``.

    Returns
    -------
    gap : ndarray of shape (...), in [0, 2].
    """
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    return np.linalg.norm(_unit(u) - _unit(v), axis=-1)


def relative_difference(u, v) -> np.ndarray:
    r"""Relative gap of ``u`` from the reference ``v``, per task.

    .. math:: \|u - v\| / \max(\|v\|, \epsilon), \qquad \epsilon \text{ the smallest normal float64}

    Parameters
    ----------
    u : ndarray of shape (..., d), for example predicted weights.
    v : ndarray of shape (..., d), for example the reference (``w_star`` or ``w_mm``);
        leading dimensions broadcast with ``u``.

    Returns
    -------
    gap : ndarray of shape (...), >= 0.
    """
    u, v = as_float("u", u, ndim_min=1), as_float("v", v, ndim_min=1)
    return np.linalg.norm(u - v, axis=-1) / np.maximum(np.linalg.norm(v, axis=-1), np.finfo(float).tiny)


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
    w, X, y = check_context(w, X, y)
    pred = np.where(np.einsum("...nd,...d->...n", X, w) >= 0, 1.0, -1.0)
    return np.mean(pred == y, axis=-1)


def moving_average(a, k: int) -> np.ndarray:
    r"""Mean over each window of ``k`` consecutive entries (chapters 06, 08).

    .. math:: \bar a_t = \frac1k\sum_{s=t}^{t+k-1} a_s

    Smooths a per-step training loss for plotting.

    Parameters
    ----------
    a : ndarray of shape (T,), the series, e.g. one loss per training step.
    k : int, the window length, 1 <= k <= T.

    Returns
    -------
    a_bar : ndarray of shape (T - k + 1,), the window means.
    """
    a = as_float("a", a, ndim_min=1)
    check_positive("k", k, integer=True)
    if k > a.shape[-1]:
        raise ValueError(f"window k = {k} is longer than the series ({a.shape[-1]} entries)")
    return np.convolve(a, np.ones(k) / k, mode="valid")
