r"""Softmax self-attention by hand: forward, backward, a query-column fast path and a naive reference (chapter 03).

Tokens are columns: ``Z`` has shape (..., D, N) with D = 2d and N = n + 1. Keys and
values are the first ``n_context`` columns :math:`K = Z_{:, :n}`; every column (or,
with ``query_only=True``, only the last) is a query:

.. math:: f(Z) = Z + V K\,\mathrm{softmax}(K^\top W Z)

with the softmax over the keys, one query column at a time.

Two kernels do the work (DESIGN.md section 3; issue "Performance"):

- the **query path** updates the last column only. It applies :math:`W` to the query
  before the keys (:math:`K^\top (W q)`: O(n D) per task, never :math:`(K^\top W) q`),
  and skips the rows of :math:`K` that meet zero rows of :math:`W` (half of them for
  :math:`W^*`), so a layer costs what an NGD step costs. :func:`query_loop` validates
  once and runs it many times on one buffer.
- the **full path** is the reference's sequence of batched products with the softmax
  done in place (``np.fmax.reduce``), the softmax backward through
  :math:`\langle A, dA\rangle = \langle U, dU\rangle` (an O(D) dot product per query
  instead of an O(n) one), and no temporaries beyond the cache.

The straightforward version lives in :mod:`ngdformer.attention_reference`; the tests
compare both kernels with it and with :func:`attention_naive`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import check_positive, check_tokens, check_weights


def softmax(s, axis: int = -2) -> np.ndarray:
    r""":math:`p = e^{s - \max s} / \sum e^{s - \max s}` along ``axis`` (default: keys, axis -2)."""
    s = np.asarray(s)
    e = np.exp(s - np.max(s, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dp, p, axis: int = -2) -> np.ndarray:
    r"""Vector-Jacobian product of the softmax: :math:`ds = p \odot (dp - \langle p, dp\rangle)`."""
    return p * (dp - np.sum(p * dp, axis=axis, keepdims=True))


class AttentionCache(NamedTuple):
    """What :func:`attention_backward` needs; every array keeps the leading batch dimensions."""

    Z: np.ndarray  # (..., D, N) input tokens
    W: np.ndarray  # (D, D)
    V: np.ndarray  # (D, D)
    n_keys: int  # keys/values are Z[..., :n_keys]
    query_only: bool  # only the last column is a query
    T: np.ndarray  # (..., D, Nq) W applied to the queries
    A: np.ndarray  # (..., n_keys, Nq) attention weights
    U: np.ndarray  # (..., D, Nq) attended values K A


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
    n_context : int, 1 <= n_context <= N - 1. Keys and values are ``Z[..., :n_context]``.
    attend_self : bool. If True, keys and values are all N columns, so every query also
        attends to itself (the "attention sink" variant of chapter 04).
    query_only : bool. If True, only the last column is a query and updated; the others
        are returned unchanged. Costs O(B n D) instead of O(B n N D).

    Returns
    -------
    out : ndarray of shape (..., D, N), dtype of ``Z``
    cache : AttentionCache
    """
    Z = check_tokens(Z, n_context)
    W, V = check_weights(W, V, Z.shape[-2])
    n_keys = Z.shape[-1] if attend_self else n_context
    forward = _query_forward if query_only else _full_forward
    return forward(Z, W, V, n_keys)


def attention_backward(dout, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of :func:`attention_forward` (DESIGN.md section 3; chapter 03).

    Reverse order of the forward, one line per intermediate:

    .. math::
        dV = \sum G_q U^\top,\ dU = V^\top G_q,\ dK = dU A^\top,\ dA = K^\top dU,\
        dS = A \odot (dA - \langle U, dU\rangle),\
        dK \mathrel{+}= T dS^\top,\ dT = K dS,\ dW = \sum dT Q^\top,\ dQ = W^\top dT

    (:math:`\langle A, dA\rangle = \langle A, K^\top dU\rangle = \langle U, dU\rangle` per query,
    an O(D) dot product instead of an O(n) one.)

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient of a scalar with respect to ``out``.
    cache : AttentionCache from the forward pass.

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    dW, dV : ndarray of shape (D, D), summed over the batch.
    """
    dout = np.asarray(dout)
    if dout.shape != cache.Z.shape:
        raise ValueError(f"dout has shape {dout.shape}, expected {cache.Z.shape} (the shape of the layer's output)")
    backward = _query_backward if cache.query_only else _full_backward
    return backward(dout, cache)


# --- helpers -----------------------------------------------------------------------------------------


def _support(M, axis: int) -> slice:
    """Smallest range of rows (``axis=1``) or columns (``axis=0``) of ``M`` holding all its non-zero entries."""
    nonzero = np.flatnonzero(np.any(M != 0, axis=axis))
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else slice(0, 0)


def _softmax_keys_(S, axis: int = -2) -> np.ndarray:
    """:func:`softmax` over the keys, in place on a scratch array ``S`` of finite scores.

    ``np.fmax.reduce`` is several times faster than ``np.max`` (which must propagate NaN),
    and working in place saves the temporaries of :func:`softmax`; on finite scores the
    values are the same.
    """
    S -= np.fmax.reduce(S, axis=axis, keepdims=True)
    np.exp(S, out=S)
    S /= np.sum(S, axis=axis, keepdims=True)
    return S


# --- the query path: only the last column is a query --------------------------------------------------


def _query_weights(Zb, T_rows, rows: slice, n_keys: int) -> np.ndarray:
    r"""Attention weights :math:`A = \mathrm{softmax}(K^\top T)` of the query, reading only ``rows`` of the keys.

    ``rows`` holds every entry of :math:`T = W q` that can be non-zero (the non-zero rows
    of W); the other rows of :math:`K` meet exact zeros and are skipped.

    Parameters
    ----------
    Zb : ndarray of shape (B, D, N); T_rows : ndarray of shape (B, |rows|), ``(W q)[rows]``

    Returns
    -------
    A : ndarray of shape (B, n_keys)
    """
    S = (T_rows[:, None, :] @ Zb[:, rows, :n_keys])[:, 0, :]  # (B, n_keys) scores T^T K, O(n |rows|) per task
    return _softmax_keys_(S, axis=-1)


def _attend(Zb, A, rows: slice, n_keys: int) -> np.ndarray:
    r"""Attended values :math:`(K A)_{\text{rows}}` of the query: (B, |rows|) from Zb (B, D, N) and A (B, n_keys)."""
    return (Zb[:, rows, :n_keys] @ A[:, :, None])[:, :, 0]


def _query_forward(Z, W, V, n_keys: int) -> tuple[np.ndarray, AttentionCache]:
    lead, (D, N) = Z.shape[:-2], Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)  # (B, D, N)
    q = Zb[:, :, -1]  # (B, D)
    rows = _support(W, 1)
    T = q @ W.T  # (B, D): W meets the query before the keys, O(D^2) per task
    A = _query_weights(Zb, T[:, rows], rows, n_keys)  # (B, n_keys)
    U = _attend(Zb, A, slice(None), n_keys)  # (B, D) every row of K A, for the backward's dV
    out = Zb.copy()
    out[:, :, -1] = q + U @ V.T
    cache = AttentionCache(Z, W, V, n_keys, True, T.reshape(lead + (D, 1)), A.reshape(lead + (n_keys, 1)),
                           U.reshape(lead + (D, 1)))
    return out.reshape(Z.shape), cache


def _query_backward(dout, cache: AttentionCache):
    Z, W, V, n_keys, _, T, A, U = cache
    D, N = Z.shape[-2:]
    Zb, G = Z.reshape(-1, D, N), dout.reshape(-1, D, N)
    K, q, g = Zb[:, :, :n_keys], Zb[:, :, -1], G[:, :, -1]  # (B, D, n_keys), (B, D), (B, D)
    T, A, U = T.reshape(-1, D), A.reshape(-1, n_keys), U.reshape(-1, D)
    dV = g.T @ U  # out = q + V U, summed over the batch
    dU = g @ V  # (B, D) = V^T g per task
    dA = (dU[:, None, :] @ K)[:, 0, :]  # (B, n_keys) = K^T dU
    dS = A * (dA - np.einsum("bd,bd->b", U, dU)[:, None])  # softmax backward, <A, dA> = <U, dU>
    dT = (K @ dS[:, :, None])[:, :, 0]  # (B, D) = K dS
    dW = dT.T @ q  # T = W q
    dq = dT @ W  # (B, D) = W^T dT
    dZ = np.empty(G.shape, dtype=np.result_type(dout, Z))
    np.matmul(np.stack((dU, T), axis=-1), np.stack((A, dS), axis=-2), out=dZ[:, :, :n_keys])  # dK = dU A^T + T dS^T
    dZ[:, :, :n_keys] += G[:, :, :n_keys]  # residual path
    dZ[:, :, n_keys:] = G[:, :, n_keys:]
    dZ[:, :, -1] += dq
    return dZ.reshape(Z.shape), dW, dV


def query_loop(Z, W, V, n_context: int, layers: int, *, attend_self: bool = False) -> np.ndarray:
    r"""Apply the query-only layer ``layers`` times: validate once, update one buffer's last column (chapter 05).

    .. math:: q \leftarrow q + V K \mathrm{softmax}(K^\top W q) \quad (\text{``layers'' times})

    Equal (to round-off) to ``layers`` calls of ``attention_forward(..., query_only=True)``,
    and to the full looped model's query column when
    :func:`ngdformer.context_is_inert` ``(W, V)``. Costs O(B n D) per loop and O(B D N) memory,
    whatever ``layers`` is.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N); W, V : ndarray of shape (D, D); n_context : int
    layers : int >= 0
    attend_self : bool, as in :func:`attention_forward` (the query is also a key).

    Returns
    -------
    Z_L : ndarray of shape (..., D, N), a new array: columns other than the last equal ``Z``'s.
    """
    check_positive("layers", layers, integer=True, allow_zero=True)
    Z = check_tokens(Z, n_context)
    W, V = check_weights(W, V, Z.shape[-2])
    D, N = Z.shape[-2:]
    n_keys = N if attend_self else n_context
    rows, cols = _support(W, 1), _support(V, 0)  # rows of K that W q and V read
    W_rows, V_cols = W[rows], V[:, cols]  # (|rows|, D), (D, |cols|)
    out = Z.reshape(-1, D, N).copy()  # (B, D, N) the one buffer; keys are views into it
    for layer in range(layers):
        q = out[:, :, -1]  # (B, D)
        if layer and not np.all(np.isfinite(q)):  # what attention_forward would reject on the next call
            raise ValueError(f"Z contains a non-finite value ({q[~np.isfinite(q)][0]}) after {layer} layers; "
                             "all entries must be finite")
        A = _query_weights(out, q @ W_rows.T, rows, n_keys)  # (B, n_keys)
        U_cols = _attend(out, A, cols, n_keys)  # (B, |cols|) the rows of K A that V reads
        out[:, :, -1] = q + U_cols @ V_cols.T
    return out.reshape(Z.shape)


# --- the full path: every column is a query ------------------------------------------------------------


def _full_forward(Z, W, V, n_keys: int) -> tuple[np.ndarray, AttentionCache]:
    K = Z[..., :n_keys]  # (..., D, n_keys) keys = values, a view
    T = W @ Z  # (..., D, N)
    A = _softmax_keys_(np.swapaxes(K, -1, -2) @ T)  # (..., n_keys, N) scores K^T T, softmax in place
    U = K @ A  # (..., D, N) attended values
    out = V @ U  # (..., D, N) the update of every column
    out = np.add(out, Z, out=out if out.dtype == Z.dtype else None).astype(Z.dtype, copy=False)  # residual
    return out, AttentionCache(Z, W, V, n_keys, False, T, A, U)


def _full_backward(dout, cache: AttentionCache):
    Z, W, V, n_keys, _, T, A, U = cache
    K = Z[..., :n_keys]
    dV = _batch_sum(dout @ np.swapaxes(U, -1, -2))  # out = Z + V U
    dU = V.T @ dout  # (..., D, N)
    dK = dU @ np.swapaxes(A, -1, -2)  # (..., D, n_keys) through the values
    dA = np.swapaxes(K, -1, -2) @ dU  # (..., n_keys, N)
    dA -= np.einsum("...dq,...dq->...q", U, dU)[..., None, :]  # softmax backward: <A, dA> = <U, dU>
    dS = np.multiply(dA, A, out=dA)  # (..., n_keys, N), in place
    dK += T @ np.swapaxes(dS, -1, -2)  # through the keys
    dT = K @ dS  # (..., D, N)
    dW = _batch_sum(dT @ np.swapaxes(Z, -1, -2))  # T = W Z
    dZ = np.add(W.T @ dT, dout, dtype=np.result_type(dout, Z))  # residual + W^T dT
    dZ[..., :n_keys] += dK
    return dZ, dW, dV


def _batch_sum(M) -> np.ndarray:
    """Sum a (..., D, D) array over its leading (batch) dimensions."""
    return M.reshape((-1,) + M.shape[-2:]).sum(axis=0)


# --- the per-token reference --------------------------------------------------------------------------


def attention_naive(Z, W, V, n_context: int, *, attend_self: bool = False, query_only: bool = False) -> np.ndarray:
    """Per-token loop reference for :func:`attention_forward` (one batch item, one query at a time).

    Obviously right and slow; the tests compare the vectorised layer with it.

    Parameters
    ----------
    Z : ndarray of shape (D, N) or (B, D, N)

    Returns
    -------
    out : ndarray, same shape as Z
    """
    Z = check_tokens(Z, n_context)
    if Z.ndim > 2:
        return np.stack([attention_naive(z, W, V, n_context, attend_self=attend_self, query_only=query_only)
                         for z in Z.reshape((-1,) + Z.shape[-2:])]).reshape(Z.shape)
    D, N = Z.shape
    n_keys = N if attend_self else n_context
    out = Z.copy()
    for j in (range(N - 1, N) if query_only else range(N)):
        q = Z[:, j]
        scores = np.array([Z[:, i] @ W @ q for i in range(n_keys)])
        p = np.exp(scores - scores.max())
        p /= p.sum()
        out[:, j] = q + V @ sum(p[i] * Z[:, i] for i in range(n_keys))
    return out
