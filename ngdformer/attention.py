r"""Softmax self-attention by hand: forward, backward and a naive reference (DESIGN.md sections 2-3; chapter 03).

Tokens are columns: ``Z`` has shape (..., D, N) with D = 2d and N = n + 1. Keys and
values are the first ``n_context`` columns :math:`K = Z_{:, :n}`; every column (or,
with ``query_only=True``, only the last) is a query:

.. math:: f(Z) = Z + V K\,\mathrm{softmax}(K^\top W Z)

with the softmax over the keys, one query column at a time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import check_tokens, check_weights


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


def _queries(Z, query_only: bool) -> np.ndarray:
    return Z[..., -1:] if query_only else Z  # (..., D, Nq)


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
    out : ndarray of shape (..., D, N)
    cache : AttentionCache
    """
    Z = check_tokens(Z, n_context)
    W, V = check_weights(W, V, Z.shape[-2])
    n_keys = Z.shape[-1] if attend_self else n_context
    K = Z[..., :n_keys]  # (..., D, n_keys) keys = values
    Q = _queries(Z, query_only)  # (..., D, Nq)
    T = W @ Q  # (..., D, Nq): W first, then keys, so the cost is O(n D) per query
    S = np.swapaxes(K, -1, -2) @ T  # (..., n_keys, Nq) scores
    A = softmax(S, axis=-2)  # over keys
    U = K @ A  # (..., D, Nq)
    out = Z.copy()
    out[..., -Q.shape[-1]:] += V @ U
    return out, AttentionCache(Z, W, V, n_keys, query_only, T, A, U)


def attention_backward(dout, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of :func:`attention_forward` (DESIGN.md section 3; chapter 03).

    Reverse order of the forward, one line per intermediate:

    .. math::
        dV = \sum G_q U^\top,\ dU = V^\top G_q,\ dK = dU A^\top,\ dA = K^\top dU,\
        dS = A \odot (dA - \mathbf 1\mathbf 1^\top(A \odot dA)),\
        dK \mathrel{+}= T dS^\top,\ dT = K dS,\ dW = \sum dT Q^\top,\ dQ = W^\top dT

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient of a scalar with respect to ``out``.
    cache : AttentionCache from the forward pass.

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    dW, dV : ndarray of shape (D, D), summed over the batch.
    """
    Z, W, V, n_keys, query_only, T, A, U = cache
    K = Z[..., :n_keys]
    Q = _queries(Z, query_only)
    nq = Q.shape[-1]
    G = dout[..., -nq:]  # (..., D, Nq) gradient reaching the updated columns
    dV = _batch_sum(G @ np.swapaxes(U, -1, -2))  # out = Z + V U
    dU = V.T @ G  # (..., D, Nq)
    dK = dU @ np.swapaxes(A, -1, -2)  # U = K A, through the values
    dA = np.swapaxes(K, -1, -2) @ dU  # (..., n_keys, Nq)
    dS = softmax_backward(dA, A, axis=-2)
    dK = dK + T @ np.swapaxes(dS, -1, -2)  # S = K^T T, through the keys
    dT = K @ dS  # (..., D, Nq)
    dW = _batch_sum(dT @ np.swapaxes(Q, -1, -2))  # T = W Q
    dQ = W.T @ dT
    dZ = np.array(dout, dtype=np.result_type(dout, Z), copy=True)  # residual path
    dZ[..., -nq:] += dQ
    dZ[..., :n_keys] += dK
    return dZ, dW, dV


def _batch_sum(M) -> np.ndarray:
    """Sum a (..., D, D) array over its leading (batch) dimensions."""
    return M.reshape((-1,) + M.shape[-2:]).sum(axis=0)


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
