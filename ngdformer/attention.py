r"""Softmax self-attention by hand: forward, backward, per-token reference (chapter 03).

Tokens are columns: ``Z`` has shape (..., D, N) with D = 2d and N = n + 1. Keys and
values are the first ``n_context`` columns :math:`K = Z_{:, :n}`; every column (or,
with ``query_only=True``, only the last one) is a query:

.. math:: f(Z) = Z + V K\,\mathrm{softmax}(K^\top W Z),

with the softmax taken over the keys, one query column at a time. This file is the
textbook version: each line of :func:`attention_forward` is one named intermediate and
:func:`attention_backward` is the same lines upside down. :mod:`ngdformer.fast` computes
the same numbers faster, and :func:`attention_naive` computes them one token at a time;
the tests compare all three.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import (InputTypeError, as_float, check_cache_gradient, check_flag,
                     check_layer)


def softmax(s, axis: int | None = None) -> np.ndarray:
    r"""Softmax :math:`p_i = e^{s_i - \max s} / \sum_j e^{s_j - \max s}` along ``axis``.

    Finite for any finite scores, however large (a difference below the float range
    gives an exact 0 weight); NaN or infinite scores are refused.

    Parameters
    ----------
    s : ndarray of shape (..., n_keys, Nq), or (n,) for a single vector; finite, and not
        empty along ``axis``.
    axis : int or None. The default (None) is the keys axis: -2, or 0 for a 1-D ``s``.

    Returns
    -------
    p : ndarray, the shape of ``s`` (float32 stays float32, anything else is float64);
        non-negative, summing to 1 along ``axis``.

    Examples
    --------
    >>> softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    s, axis = _check_scores("s", s, axis)
    with np.errstate(over="ignore"):  # s - max below the float range is -inf: weight 0
        e = np.exp(s - np.max(s, axis=axis, keepdims=True))  # shifted: e <= 1
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dp, p, axis: int | None = None) -> np.ndarray:
    r"""Backward of the softmax: :math:`ds = p \odot (dp - \langle p, dp \rangle)`.

    Parameters
    ----------
    dp : ndarray, gradient with respect to the softmax output ``p``, same shape as ``p``
    p : ndarray, the softmax output (finite)
    axis : int or None, as in :func:`softmax`

    Returns
    -------
    ds : ndarray, gradient with respect to the scores, the shape of ``p``
    """
    dp, p, axis = _check_softmax_gradient(dp, p, axis)
    return p * (dp - np.sum(p * dp, axis=axis, keepdims=True))


def _keys_axis(s) -> int:
    return 0 if np.ndim(s) == 1 else -2


class AttentionCache(NamedTuple):
    """What :func:`attention_backward` needs from the forward pass.

    Nq is the number of query columns: N, or 1 with ``query_only``.
    """

    Z: np.ndarray  #: (..., D, N) input tokens
    W: np.ndarray  #: (D, D) score weights
    V: np.ndarray  #: (D, D) value weights
    n_keys: int  #: keys and values are ``Z[..., :n_keys]``
    query_only: bool  #: True if only the last column is a query
    T: np.ndarray  #: (..., D, Nq) W applied to the queries
    A: np.ndarray  #: (..., n_keys, Nq) attention weights, each column sums to 1
    U: np.ndarray  #: (..., D, Nq) attended values K A


def attention_forward(Z, W, V, n_context: int, *, attend_self: bool = False,
                      query_only: bool = False) -> tuple[np.ndarray, AttentionCache]:
    r"""One softmax self-attention layer with a residual connection (chapter 03).

    .. math::
        T = W Q,\quad S = K^\top T,\quad A = \mathrm{softmax}_{\text{keys}}(S),\quad
        U = K A,\quad \mathrm{out}_{:,q} = Z_{:,q} + V U

    Parameters
    ----------
    Z : ndarray of shape (..., D, N), tokens as columns; leading dimensions are batch.
    W, V : ndarray of shape (D, D)
    n_context : int, 1 <= n_context <= N - 1; keys and values are ``Z[..., :n_context]``
    attend_self : bool. If True, keys and values are all N columns, so every query also
        attends to itself (the "attention sink" variant of chapter 04).
    query_only : bool. If True, only the last column is a query and is updated; the
        others are returned unchanged. Both flags must be ``True`` or ``False``.

    Returns
    -------
    out : ndarray of shape (..., D, N)
    cache : AttentionCache

    Examples
    --------
    The constructed layer moves the query's bottom half by one NGD step:

    >>> from ngdformer import embed, ngd_weights, read_weights
    >>> X, y = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, -1.0])
    >>> W, V = ngd_weights(2, 0.5)
    >>> out, cache = attention_forward(embed(X, y), W, V, 2)
    >>> read_weights(out)  # w0 = 0: equal weights, w1 = 0.5 * (x1 - x2) / 2
    array([ 0.25, -0.5 ])
    """
    Z, W, V = check_layer(Z, W, V, n_context)
    _check_flags(attend_self=attend_self, query_only=query_only)
    n_keys = Z.shape[-1] if attend_self else n_context
    K = Z[..., :n_keys]  # (..., D, n_keys) keys, also the values
    Q = Z[..., -1:] if query_only else Z  # (..., D, Nq) queries
    T = W @ Q  # (..., D, Nq)
    S = np.swapaxes(K, -1, -2) @ T  # (..., n_keys, Nq) scores
    A = softmax(S, axis=-2)  # over the keys
    U = K @ A  # (..., D, Nq) attended values
    out = Z.copy()
    out[..., -Q.shape[-1]:] += V @ U  # residual: only the queries change
    return out, AttentionCache(Z, W, V, n_keys, query_only, T, A, U)


def attention_backward(dout, cache: AttentionCache) -> tuple[np.ndarray, ...]:
    r"""Backward pass of :func:`attention_forward`: its lines in reverse (chapter 03).

    .. math::
        dV = \textstyle\sum G U^\top,\ dU = V^\top G,\ dA = K^\top dU,\
        dS = A \odot (dA - \mathbf 1 \mathbf 1^\top (A \odot dA)),\
        dT = K dS,\ dW = \textstyle\sum dT Q^\top,\ dQ = W^\top dT,\
        dK = dU A^\top + T dS^\top

    with :math:`G` the part of ``dout`` on the query columns, sums over the batch.

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), the shape of ``out``, finite: gradient of a
        scalar with respect to ``out``.
    cache : AttentionCache from :func:`attention_forward` or ``fast.attention_forward``.

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    dW, dV : ndarray of shape (D, D), summed over the batch.

    Examples
    --------
    >>> from ngdformer import ngd_weights
    >>> Z = np.random.default_rng(0).standard_normal((3, 4, 5))  # B = 3, D = 4, N = 5
    >>> W, V = ngd_weights(2, 0.5)
    >>> out, cache = attention_forward(Z, W, V, 4)
    >>> dZ, dW, dV = attention_backward(np.ones_like(out), cache)
    >>> dZ.shape, dW.shape, dV.shape
    ((3, 4, 5), (4, 4), (4, 4))
    """
    dout = _check_gradient(dout, cache)
    Z, W, V, n_keys, query_only, T, A, U = cache
    D, K = Z.shape[-2], Z[..., :n_keys]
    Q = Z[..., -1:] if query_only else Z
    G = dout[..., -Q.shape[-1]:]  # (..., D, Nq) gradient reaching the queries
    dV = np.sum((G @ np.swapaxes(U, -1, -2)).reshape(-1, D, D), axis=0)  # out = Z + V U
    dU = V.T @ G  # (..., D, Nq)
    dA = np.swapaxes(K, -1, -2) @ dU  # U = K A
    dS = A * (dA - np.sum(A * dA, axis=-2, keepdims=True))  # softmax backward
    dT = K @ dS  # S = K^T T
    dW = np.sum((dT @ np.swapaxes(Q, -1, -2)).reshape(-1, D, D), axis=0)  # T = W Q
    dQ = W.T @ dT
    dK = dU @ np.swapaxes(A, -1, -2) + T @ np.swapaxes(dS, -1, -2)  # values and keys
    dZ = dout.copy()  # residual path
    dZ[..., -Q.shape[-1]:] += dQ
    dZ[..., :n_keys] += dK
    return dZ, dW, dV


def attention_naive(Z, W, V, n_context: int, *, attend_self: bool = False,
                    query_only: bool = False) -> np.ndarray:
    """Per-token reference for :func:`attention_forward`: loops over tasks and tokens.

    Obviously right and slow; the tests compare both vectorised layers with it.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    W, V : ndarray of shape (D, D)
    n_context : int; attend_self, query_only : bool, as in :func:`attention_forward`.

    Returns
    -------
    out : ndarray of shape (..., D, N)
    """
    Z, W, V = check_layer(Z, W, V, n_context)
    _check_flags(attend_self=attend_self, query_only=query_only)
    D, N = Z.shape[-2:]
    if Z.ndim > 2:
        options = dict(attend_self=attend_self, query_only=query_only)
        tasks = Z.reshape(-1, D, N)
        items = [attention_naive(z, W, V, n_context, **options) for z in tasks]
        return np.array(items, dtype=Z.dtype).reshape(Z.shape)  # also for no tasks
    n_keys = N if attend_self else n_context
    out = Z.copy()
    for j in (range(N - 1, N) if query_only else range(N)):
        q = Z[:, j]
        scores = np.array([Z[:, i] @ W @ q for i in range(n_keys)])
        p = np.exp(scores - scores.max())
        p /= p.sum()
        out[:, j] = q + V @ sum(p[i] * Z[:, i] for i in range(n_keys))
    return out


# --- validation at the public boundary (one call at the top of each function) ---------


def _check_scores(name: str, s, axis):
    """Validate the scores (finite, at least 1-D) and the axis (in range, not empty)."""
    s = as_float(name, s, ndim_min=1)
    axis = _keys_axis(s) if axis is None else axis
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise InputTypeError(f"axis must be an integer or None, got {axis!r}")
    if not -s.ndim <= axis < s.ndim:
        raise ValueError(f"axis = {axis} is out of range for {name} of shape {s.shape}")
    if s.shape[axis] == 0:
        raise ValueError(f"{name} has shape {s.shape}: axis {axis} is empty")
    return s, int(axis)


def _check_softmax_gradient(dp, p, axis):
    """Validate the input of :func:`softmax_backward`: ``p``, ``dp`` of its shape."""
    p, axis = _check_scores("p", p, axis)
    dp = as_float("dp", dp)
    if dp.shape != p.shape:
        raise ValueError(f"dp has shape {dp.shape}, expected {p.shape}, the shape of p")
    return dp, p, axis


def _check_flags(**flags) -> None:
    """Refuse a yes/no option that is not a bool: ``"no"``, ``"False"``, 0 or 1."""
    for name, value in flags.items():
        check_flag(name, value)


def _check_gradient(dout, cache):
    """Validate the input of :func:`attention_backward`: the cache, and ``dout``."""
    if not isinstance(cache, AttentionCache):
        raise InputTypeError("cache must be the AttentionCache returned by "
                             f"attention_forward, got {type(cache).__name__}")
    return check_cache_gradient(dout, cache.Z)
