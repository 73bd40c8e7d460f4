"""In-context tasks and their token embedding (chapters 01 and 04).

Glossary: ``B`` batch, ``n`` context size, ``d`` input dimension, ``D = 2d``,
``N = n + 1`` tokens, ``Z`` tokens as columns.
"""

from __future__ import annotations

import numpy as np

from .checks import as_float, check_context, check_generator, check_positive, check_size

#: How far from 1 the norm of every row of ``w_star`` may be in :func:`sample_points`: a direction
#: typed to seven digits passes, a direction of another length (which would scale the margin) does not.
#: For float32 rows the round-off of their norm, :math:`4\sqrt{d}\,\epsilon_{32}`, is added.
UNIT_TOL = 1e-6


def sample_w_star(rng: np.random.Generator, batch: int, d: int) -> np.ndarray:
    r"""Draw ``batch`` task directions uniformly on the unit sphere in R^d (chapter 01).

    .. math:: w^* = g / \lVert g\rVert, \quad g \sim N(0, I_d)

    Parameters
    ----------
    rng : np.random.Generator, the source of randomness (pass an explicit seed).
    batch : int, number of tasks B, >= 1.
    d : int, input dimension, >= 1.

    Returns
    -------
    w_star : ndarray of shape (B, d), unit rows.
    """
    rng = check_generator(rng)
    check_positive("batch", batch, integer=True)
    check_positive("d", d, integer=True)
    check_size("w_star", (batch, d))
    return _sample_w_star(rng, batch, d)


def _sample_w_star(rng: np.random.Generator, batch: int, d: int) -> np.ndarray:
    """Kernel of :func:`sample_w_star` on checked arguments."""
    g = rng.standard_normal((batch, d))
    norms = np.linalg.norm(g, axis=-1, keepdims=True)
    g = np.where(norms > 0, g, 1.0)  # a zero draw has probability 0; keep the result finite anyway
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def _check_cov(cov, d: int, name: str = "cov") -> np.ndarray:
    r"""Validate a covariance and return its symmetric square root :math:`\Sigma^{1/2}`.

    Tolerances are relative to the largest entry, so the check means the same at every
    scale. The square root comes from ``eigh`` and is unique, so it is the same on every
    LAPACK build; a singular (PSD, not PD) covariance is allowed.
    """
    cov = as_float(name, cov, ndim_min=2)
    if cov.shape != (d, d):
        raise ValueError(f"{name} has shape {cov.shape}, expected ({d}, {d})")
    scale = float(np.max(np.abs(cov)))
    if scale == 0.0:
        raise ValueError(f"{name} is zero: every point would be the origin")
    cov = cov / scale  # largest entry 1: eigh and the root neither overflow nor underflow
    if np.max(np.abs(cov - cov.T)) > 1e-10:
        raise ValueError(f"{name} must be symmetric")
    lam, Q = np.linalg.eigh(cov)  # ascending eigenvalues
    floor = 100 * d * np.finfo(cov.dtype).eps * lam[-1]  # eigh's round-off is about d eps lam_max
    if lam[0] < -floor:
        raise ValueError(f"{name} must be positive semi-definite, got an eigenvalue {lam[0] * scale:.3g}")
    lam = np.where(lam > floor, lam, 0.0)  # round-off eigenvalues are zeros, not sqrt(eps)-sized roots
    return (Q * np.sqrt(lam)) @ Q.T * np.sqrt(scale)  # (d, d), symmetric


def _check_flip(flip, name: str = "flip") -> float:
    """A label-flip probability: a real number in [0, 1)."""
    check_positive(name, flip, allow_zero=True)
    if flip >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {flip!r}")
    return flip


def _check_sampling(n, d: int, margin, flip, cov):
    """Validate the options shared by :func:`sample_points` and :func:`sample_tasks`; return the root of ``cov``."""
    check_positive("n", n, integer=True)
    check_positive("margin", margin, allow_zero=True)
    _check_flip(flip)
    return None if cov is None else _check_cov(cov, d)


def _check_w_star(w_star) -> np.ndarray:
    """``w_star`` of shape (B, d), B, d >= 1, finite, every row unit to :data:`UNIT_TOL`."""
    w_star = as_float("w_star", w_star, ndim_min=2)
    if w_star.ndim != 2 or 0 in w_star.shape:
        raise ValueError(f"w_star must have shape (B, d) with B >= 1 and d >= 1, got shape {w_star.shape}")
    scale = np.max(np.abs(w_star), axis=-1)  # (B,) scaled norms never overflow or underflow
    norm = scale * np.linalg.norm(w_star / np.where(scale > 0, scale, 1.0)[:, None], axis=-1)
    tol = UNIT_TOL + 4 * np.sqrt(w_star.shape[1]) * np.finfo(w_star.dtype).eps
    bad = np.abs(norm - 1.0) > tol
    if np.any(bad):
        b = int(np.argmax(bad))
        raise ValueError(f"w_star must have unit rows (|norm - 1| <= {tol:.3g}): row {b} has norm {norm[b]:.6g}; "
                         "normalize it, w_star / np.linalg.norm(w_star, axis=-1, keepdims=True)")
    return w_star


def sample_points(rng: np.random.Generator, w_star, n: int, *, margin: float = 0.0,
                  flip: float = 0.0, cov=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw ``n`` labelled points per task from the task directions ``w_star``.

    .. math:: x \sim N(0, \Sigma), \quad y = \mathrm{sign}\langle w^*, x\rangle \ (\text{tie} \to +1)

    Parameters
    ----------
    rng : np.random.Generator, the source of randomness.
    w_star : ndarray of shape (B, d), one task direction per row; every row must be a unit
        vector (its norm within :data:`UNIT_TOL` = 1e-6 of 1), so that ``margin`` is a distance.
    n : int, points per task, >= 1.
    margin : float >= 0. Points with :math:`|\langle w^*, x\rangle| < \gamma`, where
        :math:`\gamma` is ``margin``, are pushed along ``w_star`` to distance exactly ``margin``.
    flip : float in [0, 1). Each label is flipped with this probability
        (the context is then usually not separable).
    cov : ndarray of shape (d, d) or None. Input covariance :math:`\Sigma`, symmetric positive
        semi-definite (identity if None).

    Returns
    -------
    X : ndarray of shape (B, n, d), the inputs x_i.
    y : ndarray of shape (B, n), labels in {-1, +1} (before flipping, the sign of
        :math:`\langle w^*, x_i\rangle`).

    Raises
    ------
    ValueError
        if ``w_star`` is not a (B, d) array of unit rows, or X would have more than
        :data:`ngdformer.checks.MAX_ELEMENTS` entries; TypeError if ``rng`` is not a Generator.
    """
    rng = check_generator(rng)
    w_star = _check_w_star(w_star)
    B, d = w_star.shape
    root = _check_sampling(n, d, margin, flip, cov)
    check_size("X", (B, n, d))
    return _sample_points(rng, w_star, n, margin, flip, root)


def _sample_points(rng: np.random.Generator, w_star, n: int, margin, flip, root) -> tuple[np.ndarray, np.ndarray]:
    """Kernel of :func:`sample_points` on checked arguments; ``root`` is the root of the covariance or None."""
    B, d = w_star.shape
    X = rng.standard_normal((B, n, d))
    if root is not None:
        X = X @ root  # x = Sigma^{1/2} g; the root is symmetric
    s = np.einsum("bnd,bd->bn", X, w_star)  # (B, n) signed distances
    sign = np.where(s >= 0, 1.0, -1.0)
    if margin > 0:
        push = np.maximum(margin - np.abs(s), 0.0) * sign  # (B, n)
        X = X + push[..., None] * w_star[:, None, :]
    y = sign
    if flip > 0:
        y = np.where(rng.random((B, n)) < flip, -y, y)
    return X, y


def sample_tasks(rng: np.random.Generator, batch: int, n: int, d: int, *, margin: float = 0.0,
                 flip: float = 0.0, cov=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Sample a batch of in-context classification tasks (chapter 01).

    .. math:: w^* \sim \mathrm{Unif}(S^{d-1}),\quad x_i \sim N(0, \Sigma),\quad
              y_i = \mathrm{sign}\langle w^*, x_i\rangle

    With the defaults the context is linearly separable through the origin.
    ``margin``, ``flip`` and ``cov`` are passed to :func:`sample_points`.

    Parameters
    ----------
    rng : np.random.Generator, the source of randomness (pass an explicit seed).
    batch : int, number of tasks B, >= 1.
    n : int, context size (labelled points per task), >= 1.
    d : int, input dimension, >= 1.
    margin : float >= 0, minimum distance :math:`|\langle w^*, x_i\rangle|` of every point;
        see :func:`sample_points`.
    flip : float in [0, 1), probability of flipping each label; see :func:`sample_points`.
    cov : ndarray of shape (d, d) or None, input covariance :math:`\Sigma` (identity if None).

    Returns
    -------
    X : ndarray of shape (B, n, d), the inputs x_i.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w_star : ndarray of shape (B, d), the task directions, unit rows.

    Raises
    ------
    ValueError
        for a bad size or option, or if X would have more than
        :data:`ngdformer.checks.MAX_ELEMENTS` entries; TypeError if ``rng`` is not a Generator.

    Examples
    --------
    >>> X, y, w_star = sample_tasks(np.random.default_rng(0), batch=4, n=8, d=3)
    >>> X.shape, y.shape, w_star.shape
    ((4, 8, 3), (4, 8), (4, 3))
    >>> bool(np.all(y * np.einsum("bnd,bd->bn", X, w_star) >= 0))  # separable by w_star
    True
    """
    rng = check_generator(rng)
    check_positive("batch", batch, integer=True)
    check_positive("d", d, integer=True)
    root = _check_sampling(n, d, margin, flip, cov)
    check_size("X", (batch, n, d))
    w_star = _sample_w_star(rng, batch, d)
    X, y = _sample_points(rng, w_star, n, margin, flip, root)
    return X, y, w_star


def embed(X, y, w0=None) -> np.ndarray:
    r"""Embed a context and a weight iterate as tokens (columns) (chapter 04).

    .. math:: Z = \begin{bmatrix} y_1 x_1 & \cdots & y_n x_n & 0 \\ 0 & \cdots & 0 & w_0 \end{bmatrix}

    The top-left block holds the context columns :math:`y_i x_i`, the bottom-right
    entry the iterate :math:`w_0`; the last column is the query.

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    w0 : ndarray of shape (..., d) or None, the initial iterate (zeros if None).
        Its leading dimensions broadcast against those of ``X``.

    Returns
    -------
    Z : ndarray of shape (..., D, N) with D = 2d, N = n + 1, tokens as columns; d >= 1, and Z may
        have at most :data:`ngdformer.checks.MAX_ELEMENTS` entries.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])  # n = 2 points in d = 2
    >>> embed(X, np.array([1.0, -1.0]), w0=np.array([5.0, 6.0]))
    array([[ 1., -3.,  0.],
           [ 2., -4.,  0.],
           [ 0.,  0.,  5.],
           [ 0.,  0.,  6.]])
    """
    _, X, y = check_context(None, X, y)
    n, d = X.shape[-2:]
    if w0 is None:
        w0 = np.zeros(X.shape[:-2] + X.shape[-1:], dtype=X.dtype)
    w0 = as_float("w0", w0, ndim_min=1)
    try:  # leading dimensions broadcast, as in check_context, with messages that name w0
        lead = np.broadcast_shapes(w0.shape[:-1], X.shape[:-2])
    except ValueError:
        lead = None
    if lead is None or w0.shape[-1] != d:
        raise ValueError(f"w0 has shape {w0.shape} but X has shape {X.shape}; expected w0.shape == "
                         f"{X.shape[:-2] + (d,)} (or leading dimensions that broadcast)")
    dtype = np.result_type(w0, X, y)
    w0, X, y = w0.astype(dtype, copy=False), X.astype(dtype, copy=False), y.astype(dtype, copy=False)
    if d == 0:
        raise ValueError(f"X has shape {X.shape}: the inputs need d >= 1 entries (Z has D = 2d rows)")
    check_size("Z", lead + (2 * d, n + 1))
    return _embed(w0, X, y)


def _embed(w0, X, y) -> np.ndarray:
    """Kernel of :func:`embed` on checked input (w0 not None)."""
    n, d = X.shape[-2:]
    Z = np.zeros(np.broadcast_shapes(X.shape[:-2], w0.shape[:-1]) + (2 * d, n + 1), dtype=X.dtype)
    Z[..., :d, :n] = np.swapaxes(y[..., None] * X, -1, -2)  # (..., d, n) columns y_i x_i
    Z[..., d:, n] = w0
    return Z


def read_weights(Z) -> np.ndarray:
    """Read the weight iterate: the bottom half of the last (query) column.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N), tokens as columns, D = 2d even and positive, N >= 1.

    Returns
    -------
    w : ndarray of shape (..., d), ``Z[..., d:, -1]`` (a copy).
    """
    Z = as_float("Z", Z, ndim_min=2)
    D, N = Z.shape[-2:]
    if D == 0 or D % 2:
        raise ValueError(f"Z must have an even, positive number of rows D = 2d, got D = {D} (Z has shape {Z.shape})")
    if N == 0:
        raise ValueError(f"Z has shape {Z.shape}: no columns, so no query column to read the iterate from")
    return Z[..., D // 2:, -1].copy()
