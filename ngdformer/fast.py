r"""The fast twins of the textbook layer: same inputs, same outputs, same caches (chapters 05-08).

:mod:`ngdformer.attention` and :mod:`ngdformer.construction` are written to be read; the
functions here compute the same numbers faster, and the tests compare each one with its
textbook twin and with the per-token loop :func:`ngdformer.attention_naive`. Training, the
looped evaluations, the out-of-distribution code and the tour run on these.

Where the speed comes from:

- **the query path** (``query_only=True``) updates the last column only. It applies
  :math:`W` to the query before the keys (:math:`K^\top (W q)`: O(n D) per task, never
  :math:`(K^\top W) q`), and skips the rows of :math:`K` that meet zero rows of :math:`W`
  (half of them for :math:`W^*`), so a layer costs what an NGD step costs.
  :func:`query_loop` validates once and runs it many times on one buffer.
- **the full path** runs the textbook's batched products with the softmax done in place,
  the softmax backward through :math:`\langle A, dA\rangle = \langle U, dU\rangle` (for each
  query, :math:`\langle A, K^\top dU\rangle = \langle K A, dU\rangle`: an O(D) dot product
  instead of an O(n) one), and no temporaries beyond the cache.
- **one validation**: the public functions here check their input once; the kernels they
  call (and that training calls on data it made itself) check nothing.
"""

from __future__ import annotations

import numpy as np

from .attention import AttentionCache
from .checks import check_cache_gradient, check_depth, check_layer
from .construction import _check_query_only_exact, context_is_inert
from .tasks import embed, read_weights


def attention_forward(Z, W, V, n_context: int, *, attend_self: bool = False,
                      query_only: bool = False) -> tuple[np.ndarray, AttentionCache]:
    """:func:`ngdformer.attention_forward`, faster: the same output and cache, to round-off.

    Parameters and returns as in :func:`ngdformer.attention_forward`. With ``query_only``
    it costs O(B n D) instead of O(B n N D); the full layer saves the softmax's temporaries.
    """
    Z, W, V = check_layer(Z, W, V, n_context)
    n_keys = Z.shape[-1] if attend_self else n_context
    return (_query_forward if query_only else _full_forward)(Z, W, V, n_keys)


def attention_backward(dout, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`ngdformer.attention_backward`, faster: the same gradients, to round-off.

    Takes a cache from either forward pass. The softmax backward uses
    :math:`\\langle A, dA\\rangle = \\langle U, dU\\rangle`, and the query path builds the
    gradient of the keys with one batched product.
    """
    dout = check_cache_gradient(dout, cache.Z)
    return (_query_backward if cache.query_only else _full_backward)(dout, cache)


def query_loop(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False) -> np.ndarray:
    r"""The query-column model: apply the query-only layer ``depth`` times on one buffer (chapter 05).

    .. math:: q \leftarrow q + V K \mathrm{softmax}(K^\top W q) \quad (\text{``depth'' times})

    The context columns never change here. This equals (to round-off) ``depth`` calls of
    ``attention_forward(..., query_only=True)``; it equals the full looped model's query
    column only when :func:`ngdformer.context_is_inert` ``(W, V)``, which
    :func:`looped_forward` checks before it uses this. Costs O(B n D) per application and
    O(B D N) memory, whatever ``depth`` is.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    W, V : ndarray of shape (D, D)
    n_context : int, keys and values are ``Z[..., :n_context]``
    depth : int >= 0, number of applications
    attend_self : bool, as in :func:`ngdformer.attention_forward` (the query is also a key).

    Returns
    -------
    Z_L : ndarray of shape (..., D, N), a new array: columns other than the last equal ``Z``'s.
    """
    check_depth(depth)
    Z, W, V = check_layer(Z, W, V, n_context)
    return _query_loop(Z, W, V, Z.shape[-1] if attend_self else n_context, depth)


def _query_loop(Z, W, V, n_keys: int, depth: int, trajectory: bool = False) -> np.ndarray:
    """Kernel of :func:`query_loop` on checked input; ``trajectory=True`` also returns the query after each application."""
    D, N = Z.shape[-2:]
    rows, cols = _support(W, 1), _support(V, 0)  # rows of K that W q and V read
    W_rows, V_cols = W[rows], V[:, cols]  # (|rows|, D), (D, |cols|)
    out = Z.reshape(-1, D, N).copy()  # (B, D, N) the one buffer; keys are views into it
    queries = [out[:, :, -1].copy()] if trajectory else None
    for layer in range(depth):
        q = out[:, :, -1]  # (B, D)
        if layer and not np.all(np.isfinite(q)):  # what attention_forward would reject on the next call
            raise ValueError(f"Z contains a non-finite value ({q[~np.isfinite(q)][0]}) after {layer} applications; "
                             "all entries must be finite")
        A = _query_weights(out, q @ W_rows.T, rows, n_keys)  # (B, n_keys)
        U_cols = _attend(out, A, cols, n_keys)  # (B, |cols|) the rows of K A that V reads
        out[:, :, -1] = q + U_cols @ V_cols.T
        if trajectory:
            queries.append(out[:, :, -1].copy())
    if trajectory:
        return np.stack(queries).reshape((depth + 1,) + Z.shape[:-1])  # (depth + 1, ..., D)
    return out.reshape(Z.shape)


def looped_forward(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False,
                   query_only: bool = False) -> np.ndarray:
    """:func:`ngdformer.looped_forward`, faster: one validation, then the fast kernels.

    With ``query_only=True`` it runs :func:`query_loop` (O(B n D) per application, one
    buffer); like the textbook version it refuses weights whose context columns feed back
    into the query (see :func:`ngdformer.context_is_inert`) when ``depth > 1``.

    Returns
    -------
    Z_L : ndarray of shape (..., D, N)
    """
    check_depth(depth)
    Z, W, V = check_layer(Z, W, V, n_context)
    n_keys = Z.shape[-1] if attend_self else n_context
    if query_only:
        _check_query_only_exact(W, V, depth)
        return _query_loop(Z, W, V, n_keys, depth)
    for _ in range(depth):
        Z, _ = _full_forward(Z, W, V, n_keys)
    return Z


def looped_trajectory(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False) -> np.ndarray:
    r"""The iterate read out of the query column after every application: :math:`w_0, w_1, \dots, w_L`.

    Runs the query path when :func:`ngdformer.context_is_inert` ``(W, V)`` (there it is
    exact), the full layer otherwise.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N), e.g. :func:`ngdformer.embed` ``(X, y, w0)``
    W, V : ndarray of shape (D, D)
    n_context : int
    depth : int >= 0, number of applications L
    attend_self : bool, as in :func:`ngdformer.attention_forward`

    Returns
    -------
    w : ndarray of shape (depth + 1, ..., d); ``w[t]`` is :func:`ngdformer.read_weights` after t applications.

    Examples
    --------
    With the construction, the trajectory is NGD's:

    >>> from ngdformer import embed, ngd, ngd_weights, sample_tasks
    >>> X, y, _ = sample_tasks(np.random.default_rng(0), 4, 10, 3)
    >>> w = looped_trajectory(embed(X, y), *ngd_weights(3, 0.5), 10, 20)
    >>> w.shape, bool(np.allclose(w, ngd(np.zeros((4, 3)), X, y, 0.5, 20)))
    ((21, 4, 3), True)
    """
    check_depth(depth)
    Z, W, V = check_layer(Z, W, V, n_context)
    n_keys = Z.shape[-1] if attend_self else n_context
    d = Z.shape[-2] // 2
    if context_is_inert(W, V):
        return _query_loop(Z, W, V, n_keys, depth, trajectory=True)[..., d:]
    out = [read_weights(Z)]
    for _ in range(depth):
        Z, _ = _full_forward(Z, W, V, n_keys)
        out.append(read_weights(Z))
    return np.stack(out)


def looped_forward_with_cache(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False):
    """:func:`ngdformer.looped_forward_with_cache` on the fast full path: ``(Z_L, caches)``."""
    check_depth(depth)
    Z, W, V = check_layer(Z, W, V, n_context)
    return _looped_with_cache(Z, W, V, Z.shape[-1] if attend_self else n_context, depth)


def _looped_with_cache(Z, W, V, n_keys: int, depth: int):
    caches = []
    for _ in range(depth):
        Z, cache = _full_forward(Z, W, V, n_keys)
        caches.append(cache)
    return Z, caches


def looped_backward(dout, caches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`ngdformer.looped_backward` on the fast kernels: ``(dZ, dW, dV)``, the weights' gradients summed."""
    if caches:
        dout = check_cache_gradient(dout, caches[-1].Z)
    return _looped_backward(dout, caches)


def _looped_backward(dout, caches):
    D = dout.shape[-2]
    dW, dV = np.zeros((D, D)), np.zeros((D, D))
    for cache in reversed(caches):
        dout, gW, gV = (_query_backward if cache.query_only else _full_backward)(dout, cache)
        dW, dV = dW + gW, dV + gV
    return dout, dW, dV


# --- the kernels: checked input only --------------------------------------------------------------------


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


# --- the query path: only the last column is a query ---


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


# --- the full path: every column is a query ---


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
