r"""The straightforward vectorised attention layer, kept as the reference for the fast one (chapter 03).

:func:`ngdformer.attention_forward` and :func:`ngdformer.attention_backward` reorder and
reshape these products for speed (issue "Performance"); the tests check them against
these two functions and against the per-token loop :func:`ngdformer.attention_naive`.
Every product here is a batched ``@`` over the leading dimensions, in the order of the
equations, so the code reads like DESIGN.md section 3.
"""

from __future__ import annotations

import numpy as np

from .attention import AttentionCache, softmax, softmax_backward
from .checks import check_tokens, check_weights


def _queries(Z, query_only: bool) -> np.ndarray:
    return Z[..., -1:] if query_only else Z  # (..., D, Nq)


def attention_forward_reference(Z, W, V, n_context: int, *, attend_self: bool = False,
                                query_only: bool = False) -> tuple[np.ndarray, AttentionCache]:
    r"""Reference forward pass: same inputs, outputs and cache as :func:`ngdformer.attention_forward` (chapter 03).

    .. math::
        T = W Q,\quad S = K^\top T,\quad A = \mathrm{softmax}_{\text{keys}}(S),\quad
        U = K A,\quad \mathrm{out}_{:,q} = Z_{:,q} + V U

    Parameters
    ----------
    Z : ndarray of shape (..., D, N); W, V : ndarray of shape (D, D); n_context : int
    attend_self, query_only : bool, as in :func:`ngdformer.attention_forward`.

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
    T = W @ Q  # (..., D, Nq)
    S = np.swapaxes(K, -1, -2) @ T  # (..., n_keys, Nq) scores
    A = softmax(S, axis=-2)  # over keys
    U = K @ A  # (..., D, Nq)
    out = Z.copy()
    out[..., -Q.shape[-1]:] += V @ U
    return out, AttentionCache(Z, W, V, n_keys, query_only, T, A, U)


def attention_backward_reference(dout, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Reference backward pass (DESIGN.md section 3; chapter 03).

    .. math::
        dV = \sum G_q U^\top,\ dU = V^\top G_q,\ dK = dU A^\top,\ dA = K^\top dU,\
        dS = A \odot (dA - \mathbf 1\mathbf 1^\top(A \odot dA)),\
        dK \mathrel{+}= T dS^\top,\ dT = K dS,\ dW = \sum dT Q^\top,\ dQ = W^\top dT

    Parameters
    ----------
    dout : ndarray of shape (..., D, N)
    cache : AttentionCache from either forward pass.

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
