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
- **chunks of tasks**: every kernel walks the batch in chunks of whole tasks, a chunk
  small enough to stay in the core's cache while all of its products (and, in a loop, all
  of its applications) run on it. NumPy's batched product is one small GEMM per task; on
  a chunk that is already in cache they run faster. The chunk is chosen by bytes: about
  :data:`CHUNK_BYTES` (512 KiB) of tokens and attention weights, ``8 N (D + n_keys)`` bytes
  per task on the full path and ``itemsize D N`` on the query path. Measured at d = 16 on
  one thread (float64, forward + backward of the full layer against the unchunked kernels,
  CPU time, medians of 11 interleaved rounds, measured under load): at n = 64, B = 256,
  chunks of 256 KiB to 1 MiB (5 to 21 tasks) took 0.81-0.82x the time, 128 KiB 0.90x and
  2 MiB 0.87x; at n = 256 one to three tasks (up to 2 MiB) took 0.81-0.84x; at B = 64
  (n = 64) chunking neither gained nor lost (0.99-1.01x).
- **threads** on the full path: NumPy releases the GIL inside its products, so the chunks
  of the full layer, its backward and the looped model (with and without caches, and its
  backward) run on a small pool of threads (:class:`concurrent.futures.ThreadPoolExecutor`,
  made on first use and reused), each taking the next chunk until none is left. Chunk
  boundaries do not depend on the number of threads, every chunk runs the same operations
  whichever thread takes it, and sums over the batch (dW, dV) add the chunks' partial sums
  in chunk order: the results are bit-identical for any number of threads. Two threads
  took 0.76x the time of one for the layer's forward + backward (B = 256, n = 64) and
  0.72x for the looped loss of ``train_looped`` (B = 64, n = 40, d = 10, five loops),
  measured under load. The query path stays on the calling thread: there two threads took
  1.08x (one call, B = 1024, n = 64), 0.97x (20 loops) and, for the training loss at
  B = 256, 4.2x the time of one: many small products, each too short to hand to a thread.
  :func:`set_num_threads` sets the number; by default it is the BLAS's thread setting as
  ``threadpoolctl.threadpool_info()`` reports it (so ``OPENBLAS_NUM_THREADS``,
  ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``threadpoolctl.threadpool_limits`` steer it),
  at most the number of usable cores. One thread runs everything in the calling thread
  and leaves the BLAS alone; with more, the BLAS is limited to one thread while the chunks
  run (``threadpoolctl``), so the two levels of threads do not oversubscribe the cores.
- **one validation**: the public functions here check their input once; the kernels they
  call (and that training calls on data it made itself) check nothing. The query path
  checks ``Z`` for non-finite entries chunk by chunk while it copies it (one pass over
  memory instead of two), and raises the same error as the other functions.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import threadpoolctl

from .attention import AttentionCache
from .checks import as_float, check_cache_gradient, check_depth, check_flag, check_layer, check_positive
from .construction import _check_query_only_exact, context_is_inert

#: Bytes of tokens and attention weights per chunk of tasks (see the module docstring).
CHUNK_BYTES = 2**19

#: The largest number of threads :func:`set_num_threads` accepts.
MAX_THREADS = 256


def attention_forward(Z, W, V, n_context: int, *, attend_self: bool = False,
                      query_only: bool = False) -> tuple[np.ndarray, AttentionCache]:
    """:func:`ngdformer.attention_forward`, faster: the same output and cache, to round-off.

    With ``query_only`` it costs O(B n D) instead of O(B n N D) and reads ``Z`` from memory
    once (it checks each chunk for non-finite entries as it copies it); the full layer
    saves the softmax's temporaries and runs on :func:`get_num_threads` threads.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N), tokens as columns; leading dimensions are batch.
    W, V : ndarray of shape (D, D)
    n_context : int, 1 <= n_context <= N - 1; keys and values are ``Z[..., :n_context]``
    attend_self, query_only : bool, as in :func:`ngdformer.attention_forward`

    Returns
    -------
    out : ndarray of shape (..., D, N)
    cache : AttentionCache
    """
    attend_self, query_only = check_flag("attend_self", attend_self), check_flag("query_only", query_only)
    if query_only:
        Z, W, V = _check_layer_but_finite_tokens(Z, W, V, n_context)
        return _query_forward(Z, W, V, Z.shape[-1] if attend_self else n_context, scan=True)
    Z, W, V = check_layer(Z, W, V, n_context)
    return _full_forward(Z, W, V, Z.shape[-1] if attend_self else n_context)


def attention_backward(dout, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`ngdformer.attention_backward`, faster: the same gradients, to round-off.

    Takes a cache from either forward pass. The softmax backward uses
    :math:`\\langle A, dA\\rangle = \\langle U, dU\\rangle`, and the query path builds the
    gradient of the keys with one batched product.

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), finite, the shape of the layer's output
    cache : AttentionCache from :func:`attention_forward` or :func:`ngdformer.attention_forward`

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    dW, dV : ndarray of shape (D, D), summed over the batch
    """
    dout = check_cache_gradient(dout, cache.Z)
    return (_query_backward if cache.query_only else _full_backward)(dout, cache)


def query_loop(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False) -> np.ndarray:
    r"""The query-column model: apply the query-only layer ``depth`` times on one buffer (chapter 05).

    .. math:: q \leftarrow q + V K \mathrm{softmax}(K^\top W q) \quad (\text{``depth'' times})

    The context columns never change here. This equals (to round-off) ``depth`` calls of
    ``attention_forward(..., query_only=True)``, and like them refuses an iterate that has
    become non-finite before the next application; it equals the full looped model's query
    column only when :func:`ngdformer.context_is_inert` ``(W, V)``, which
    :func:`looped_forward` checks before it uses this. Costs O(B n D) per application and
    O(B D N) memory, whatever ``depth`` is; each chunk of tasks runs all ``depth``
    applications while it is in cache.

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
    depth, attend_self = check_depth(depth), check_flag("attend_self", attend_self)
    Z, W, V = _check_layer_but_finite_tokens(Z, W, V, n_context)
    return _query_loop(Z, W, V, Z.shape[-1] if attend_self else n_context, depth, scan=True)


def looped_forward(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False,
                   query_only: bool = False) -> np.ndarray:
    """:func:`ngdformer.looped_forward`, faster: one validation, then the fast kernels.

    With ``query_only=True`` it runs :func:`query_loop` (O(B n D) per application, one
    buffer); like the textbook version it refuses weights whose context columns feed back
    into the query (see :func:`ngdformer.context_is_inert`) when ``depth > 1``. The full
    model runs every application on one chunk of tasks before the next chunk, and keeps
    no caches.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    W, V : ndarray of shape (D, D)
    n_context : int, keys and values are ``Z[..., :n_context]``
    depth : int >= 0, number of applications L
    attend_self, query_only : bool, as in :func:`ngdformer.looped_forward`

    Returns
    -------
    Z_L : ndarray of shape (..., D, N), a new array (for ``depth = 0`` a copy of the checked ``Z``)
    """
    depth = check_depth(depth)
    attend_self, query_only = check_flag("attend_self", attend_self), check_flag("query_only", query_only)
    if query_only:
        Z, W, V = _check_layer_but_finite_tokens(Z, W, V, n_context)
        _check_query_only_exact(W, V, depth)
        return _query_loop(Z, W, V, Z.shape[-1] if attend_self else n_context, depth, scan=True)
    Z, W, V = check_layer(Z, W, V, n_context)
    return _looped_full(Z, W, V, Z.shape[-1] if attend_self else n_context, depth)


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
    depth, attend_self = check_depth(depth), check_flag("attend_self", attend_self)
    Z, W, V = _check_layer_but_finite_tokens(Z, W, V, n_context)
    n_keys = Z.shape[-1] if attend_self else n_context
    d = Z.shape[-2] // 2
    if context_is_inert(W, V):
        return _query_loop(Z, W, V, n_keys, depth, trajectory=True, scan=True)[..., d:]
    Z = as_float("Z", Z)  # the full path reads every entry: the usual check
    return _looped_full(Z, W, V, n_keys, depth, trajectory=True)[..., d:]


def looped_forward_with_cache(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False):
    """:func:`ngdformer.looped_forward_with_cache` on the fast full path: ``(Z_L, caches)``.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    W, V : ndarray of shape (D, D)
    n_context : int, keys and values are ``Z[..., :n_context]``
    depth : int >= 0, number of applications L
    attend_self : bool, as in :func:`ngdformer.attention_forward`

    Returns
    -------
    Z_L : ndarray of shape (..., D, N), a new array
    caches : list of ``depth`` AttentionCache, in forward order
    """
    depth, attend_self = check_depth(depth), check_flag("attend_self", attend_self)
    Z, W, V = check_layer(Z, W, V, n_context)
    out, caches = _looped_with_cache(Z, W, V, Z.shape[-1] if attend_self else n_context, depth)
    return (out if caches else Z.copy()), caches


def looped_backward(dout, caches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`ngdformer.looped_backward` on the fast kernels: ``(dZ, dW, dV)``, the weights' gradients summed.

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), finite, gradient with respect to the output Z_L
    caches : list of AttentionCache from :func:`looped_forward_with_cache` (empty for depth 0)

    Returns
    -------
    dZ : ndarray of shape (..., D, N), a new array (a copy of ``dout`` for depth 0)
    dW, dV : ndarray of shape (D, D), summed over the applications and the batch
    """
    caches = list(caches)
    if not caches:
        dout = as_float("dout", dout, ndim_min=2)
        D = dout.shape[-2]
        return dout.copy(), np.zeros((D, D), dout.dtype), np.zeros((D, D), dout.dtype)
    return _looped_backward(check_cache_gradient(dout, caches[-1].Z), caches)


# --- threads and chunks -----------------------------------------------------------------------------------

_threads_set: int | None = None  # set_num_threads; None: from the BLAS
_pool: ThreadPoolExecutor | None = None  # worker threads: the calling thread is one more
_pool_owner = (0, 0)  # (pid, workers) of _pool; a forked child makes its own
_controller: threadpoolctl.ThreadpoolController | None = None
_lock = threading.Lock()


def set_num_threads(threads: int | None) -> int | None:
    """Set how many threads the fast kernels use; ``None`` goes back to the default.

    The default is the BLAS's thread setting (``threadpoolctl.threadpool_info()``, which
    ``OPENBLAS_NUM_THREADS`` and the like set), at most the number of usable cores. The
    numbers the kernels return do not depend on it, only their speed. Calls from several
    threads at once are safe: each waits for its own chunks.

    Parameters
    ----------
    threads : int >= 1 (at most :data:`MAX_THREADS`), or None

    Returns
    -------
    previous : int or None, the setting before this call, to restore it later

    Examples
    --------
    >>> previous = set_num_threads(1)  # everything in the calling thread
    >>> get_num_threads()
    1
    >>> _ = set_num_threads(previous)
    """
    global _threads_set
    if threads is not None:
        threads = int(check_positive("threads", threads, integer=True, maximum=MAX_THREADS))
    previous, _threads_set = _threads_set, threads
    return previous


def get_num_threads() -> int:
    """The number of threads the fast kernels use now (see :func:`set_num_threads`).

    Returns
    -------
    threads : int >= 1
    """
    if _threads_set is not None:
        return _threads_set
    blas = [lib.num_threads for lib in _blas_libraries()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(max((k for k in blas if k), default=1), cores))


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (found once; reading their setting is cheap)."""
    global _controller
    with _lock:
        if _controller is None:
            _controller = threadpoolctl.ThreadpoolController()
    return [lib for lib in _controller.lib_controllers if lib.user_api == "blas"]


def _one_blas_thread():
    """A context limiting the BLAS to one thread (threadpoolctl), or nothing if it already runs one."""
    if all((lib.num_threads or 1) <= 1 for lib in _blas_libraries()):
        return nullcontext()
    return _controller.limit(limits=1, user_api="blas")


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """The shared pool with at least ``workers`` threads, made on first use and reused."""
    global _pool, _pool_owner
    with _lock:
        if _pool is None or _pool_owner[0] != os.getpid() or _pool_owner[1] < workers:
            if _pool is not None and _pool_owner[0] == os.getpid():
                _pool.shutdown(wait=False)  # queued work still runs; new work goes to the larger pool
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ngdformer-fast")
            _pool_owner = (os.getpid(), workers)
        return _pool


def _chunks(B: int, task_bytes: int) -> list[slice]:
    """Consecutive slices of ``range(B)`` of about :data:`CHUNK_BYTES` (one task at least), whatever the threads."""
    per = max(1, CHUNK_BYTES // max(int(task_bytes), 1))
    return [slice(start, min(start + per, B)) for start in range(0, B, per)]


def _map_chunks(task, n_chunks: int, parallel: bool = True) -> list:
    """``[task(0), ..., task(n_chunks - 1)]``, the calls spread over :func:`get_num_threads` threads.

    The calling thread works too, and every thread takes the next chunk not yet taken;
    ``task(i)`` must write only its own chunk's part of any shared output. The workers run
    in copies of the caller's context and under the caller's ``np.errstate`` (on every NumPy).
    ``parallel=False`` runs every chunk in the calling thread (where threads do not pay).
    """
    threads = min(get_num_threads(), n_chunks) if parallel else 1
    if threads <= 1:
        return [task(i) for i in range(n_chunks)]
    results = [None] * n_chunks
    take = itertools.count().__next__  # atomic: each chunk index is handed out once
    errors = np.geterr()  # NumPy < 2 keeps errstate per thread, not in the context: pass it on by hand

    def runner():
        with _one_blas_thread(), np.errstate(**errors):  # a per-thread BLAS (OpenMP) needs its limit in each thread
            i = take()
            while i < n_chunks:
                results[i] = task(i)
                i = take()

    with _one_blas_thread():
        pool = _worker_pool(threads - 1)
        futures = [pool.submit(contextvars.copy_context().run, runner) for _ in range(threads - 1)]
        try:
            runner()
        finally:
            for future in futures:
                future.cancel()  # a worker busy elsewhere need not start: the chunks are done
            for future in futures:
                if not future.cancelled():
                    future.result()
    return results


def _add_in_order(parts, shape, dtype) -> np.ndarray:
    """Sum a list of arrays in list order (zeros of ``shape`` for an empty list): the same bits every time."""
    if not parts:
        return np.zeros(shape, dtype)
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


# --- input checks that leave the scan for non-finite tokens to the kernel -----------------------------------


def _check_layer_but_finite_tokens(Z, W, V, n_context: int):
    """:func:`ngdformer.checks.check_layer` except the scan of a float ``Z`` for non-finite entries.

    Shapes, dtype, ``n_context`` and the weights are checked here, with the usual messages
    (one task of ``Z`` stands in for the rest); the kernel (``scan=True``) checks every
    entry of ``Z`` as it copies it.
    """
    Z = np.asarray(Z)
    if Z.ndim < 2 or Z.size == 0 or Z.dtype not in (np.float32, np.float64):
        return check_layer(Z, W, V, n_context)  # the usual checks (and conversion) on the whole array
    _, W, V = check_layer(Z[(0,) * (Z.ndim - 2)], W, V, n_context)
    dtype = np.result_type(Z, W, V)  # float32 tokens with float64 weights: a float64 layer, as in check_layer
    return (Z if Z.dtype == dtype else Z.astype(dtype)), W, V


def _scan_finite(chunk):
    r"""The first non-finite entry of a contiguous ``chunk`` (C order), or None if every entry is finite.

    One pass, no temporary: the sum of squares :math:`\sum x^2` (one BLAS dot product of
    the chunk with itself) is finite if every entry is, unless it overflows (entries beyond
    about 1e154), and a NaN or inf anywhere makes it NaN or inf; only when it is not finite
    are the entries looked at one by one.
    """
    flat = chunk.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.dot(flat, flat)
    if np.isfinite(total):
        return None
    bad = chunk[~np.isfinite(chunk)]
    return bad[0] if bad.size else None


def _raise_non_finite(found: list, suffix: str = "") -> None:
    """Raise the checks' error for the first entry that is not None in ``found`` (chunk order)."""
    for bad in found:
        if bad is not None:
            raise ValueError(f"Z contains a non-finite value ({bad}){suffix}; all entries must be finite")


# --- the kernels: checked input only --------------------------------------------------------------------


def _support(M, axis: int) -> slice:
    """Smallest range of rows (``axis=1``) or columns (``axis=0``) of ``M`` holding all its non-zero entries."""
    nonzero = np.flatnonzero(np.any(M != 0, axis=axis))
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else slice(0, 0)


def _softmax_keys_(S, axis: int = -2) -> np.ndarray:
    """:func:`softmax` over the keys, in place on a scratch array ``S`` of finite scores.

    ``np.fmax.reduce`` is several times faster than ``np.max`` (which must propagate NaN),
    working in place saves the temporaries of :func:`softmax`, and one reciprocal per
    column with a product is cheaper than a division per entry; on finite scores the
    values agree with :func:`softmax` to an ulp or two.
    """
    S -= np.fmax.reduce(S, axis=axis, keepdims=True)
    np.exp(S, out=S)
    total = np.add.reduce(S, axis=axis, keepdims=True)
    S *= np.reciprocal(total, out=total)
    return S


def _flat(cache: AttentionCache):
    """The arrays of a cache with the batch dimensions flattened: Z (B, D, N), T (B, D, Nq), A (B, n_keys, Nq), U."""
    D, N = cache.Z.shape[-2:]
    Nq = 1 if cache.query_only else N
    return (cache.Z.reshape(-1, D, N), cache.T.reshape(-1, D, Nq), cache.A.reshape(-1, cache.n_keys, Nq),
            cache.U.reshape(-1, D, Nq))


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


def _query_chunk(Zc, W, V, rows: slice, n_keys: int):
    """One query-only layer on a chunk: ``(T, A, U, new query)``, shapes (c, D), (c, n_keys), (c, D), (c, D)."""
    q = Zc[:, :, -1]  # (c, D)
    T = q @ W.T  # (c, D): W meets the query before the keys, O(D^2) per task
    A = _query_weights(Zc, T[:, rows], rows, n_keys)  # (c, n_keys)
    U = _attend(Zc, A, slice(None), n_keys)  # (c, D) every row of K A, for the backward's dV
    return T, A, U, q + U @ V.T


def _query_forward(Z, W, V, n_keys: int, scan: bool = False) -> tuple[np.ndarray, AttentionCache]:
    """Kernel of the query-only layer; ``scan=True`` refuses non-finite tokens, chunk by chunk as it copies them."""
    lead, (D, N) = Z.shape[:-2], Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)  # (B, D, N)
    B, rows = Zb.shape[0], _support(W, 1)
    dtype = np.result_type(Z, W)
    out = np.empty(Zb.shape, Z.dtype)
    T, A, U = np.empty((B, D), dtype), np.empty((B, n_keys), dtype), np.empty((B, D), dtype)
    slices = _chunks(B, Z.itemsize * D * N)

    def task(i):
        s = slices[i]
        np.copyto(out[s], Zb[s])  # the copy brings the chunk into cache; the layer reads it there
        bad = _scan_finite(out[s]) if scan else None
        if bad is None:
            T[s], A[s], U[s], out[s, :, -1] = _query_chunk(out[s], W, V, rows, n_keys)
        return bad

    _raise_non_finite(_map_chunks(task, len(slices), parallel=False))  # threads did not pay here
    cache = AttentionCache(Z, W, V, n_keys, True, T.reshape(lead + (D, 1)), A.reshape(lead + (n_keys, 1)),
                           U.reshape(lead + (D, 1)))
    return out.reshape(Z.shape), cache


def _query_backward(dout, cache: AttentionCache):
    Z, W, V, n_keys, _, T, A, U = cache
    D, N = Z.shape[-2:]
    Zb, G = Z.reshape(-1, D, N), dout.reshape(-1, D, N)
    K, q = Zb[:, :, :n_keys], Zb[:, :, -1]  # (B, D, n_keys), (B, D)
    g = np.ascontiguousarray(G[:, :, -1])  # (B, D); contiguous, as in _one_step_loss: the products give the same bits
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


def _one_step_loss(W, V, Z, target) -> tuple[float, np.ndarray, np.ndarray]:
    r"""The one-step training loss and its weight gradients, computing only what they read (chapter 06).

    The same numbers (bit for bit) as the query-only forward and backward with
    ``dout`` zero except ``(o - target) / B`` on the query column, without the copy of
    ``Z``, the output and ``dZ``:

    .. math:: J = \frac{1}{2B}\sum_b \|o_b - t_b\|^2,\quad o = q + V K \mathrm{softmax}(K^\top W q)

    Parameters
    ----------
    W, V : ndarray of shape (D, D), checked
    Z : ndarray of shape (..., D, N), checked; the keys are its first N - 1 columns
    target : ndarray of shape (..., D)

    Returns
    -------
    J : float
    dW, dV : ndarray of shape (D, D)
    """
    D, N = Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)  # (B, D, N)
    B, n_keys, rows = Zb.shape[0], N - 1, _support(W, 1)
    K, q = Zb[:, :, :n_keys], Zb[:, :, -1]  # (B, D, n), (B, D)
    slices = _chunks(B, Z.itemsize * D * N) or [slice(0, 0)]  # the query path's chunks: the same bits
    parts = _map_chunks(lambda i: _query_chunk(Zb[slices[i]], W, V, rows, n_keys), len(slices), parallel=False)
    _, A, U, o = (np.concatenate(p) if len(p) > 1 else p[0] for p in zip(*parts))  # (B, n), (B, D), (B, D) after T
    o = o.astype(Z.dtype, copy=False)  # the query column of the output
    r = o - target.reshape(-1, D)  # (B, D) residual
    g = r / B  # dJ/do
    dV = g.T @ U  # o = q + V U
    dU = g @ V  # (B, D)
    dA = (dU[:, None, :] @ K)[:, 0, :]  # (B, n) = K^T dU
    dS = A * (dA - np.einsum("bd,bd->b", U, dU)[:, None])  # softmax backward, <A, dA> = <U, dU>
    dT = (K @ dS[:, :, None])[:, :, 0]  # (B, D) = K dS
    dW = dT.T @ q  # T = W q
    return 0.5 * float(np.sum(r * r)) / B, dW, dV


def _query_loop(Z, W, V, n_keys: int, depth: int, trajectory: bool = False, scan: bool = False) -> np.ndarray:
    """Kernel of :func:`query_loop`; ``trajectory=True`` returns the query after each application instead.

    Each chunk of tasks runs all ``depth`` applications while it is in cache. ``scan=True``
    refuses non-finite tokens as they are copied. An iterate that is non-finite before an
    application is refused as ``attention_forward`` would refuse it (the first application
    after which any task's query is non-finite is named, whatever the chunks).
    """
    D, N = Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)
    B = Zb.shape[0]
    rows, cols = _support(W, 1), _support(V, 0)  # rows of K that W q and V read
    W_rows, V_cols = W[rows], V[:, cols]  # (|rows|, D), (D, |cols|)
    out = np.empty(Zb.shape, Z.dtype)  # (B, D, N) the one buffer; keys are views into it
    queries = np.empty((depth + 1, B, D), Z.dtype) if trajectory else None
    slices = _chunks(B, Z.itemsize * D * N)

    def task(i):  # returns (layer, value) of the first non-finite entry found, or None
        s = slices[i]
        chunk = out[s]
        np.copyto(chunk, Zb[s])
        bad = _scan_finite(chunk) if scan else None
        if bad is not None:
            return -1, bad
        if trajectory:
            queries[0, s] = chunk[:, :, -1]
        for layer in range(depth):
            q = chunk[:, :, -1]  # (c, D)
            if layer and not np.all(np.isfinite(q)):  # what attention_forward would reject on the next call
                return layer, q[~np.isfinite(q)][0]
            A = _query_weights(chunk, q @ W_rows.T, rows, n_keys)  # (c, n_keys)
            U_cols = _attend(chunk, A, cols, n_keys)  # (c, |cols|) the rows of K A that V reads
            chunk[:, :, -1] = q + U_cols @ V_cols.T
            if trajectory:
                queries[layer + 1, s] = chunk[:, :, -1]
        return None

    found = [f for f in _map_chunks(task, len(slices), parallel=False) if f is not None]  # threads did not pay
    if found:
        layer, bad = min(found, key=lambda f: f[0])  # min keeps the first chunk among equal layers
        _raise_non_finite([bad], "" if layer < 0 else f" after {layer} applications")
    if trajectory:
        return queries.reshape((depth + 1,) + Z.shape[:-1])  # (depth + 1, ..., D)
    return out.reshape(Z.shape)


# --- the full path: every column is a query ---


def _full_chunk(Zc, W, V, n_keys: int, out, T, A, U) -> None:
    """The full layer on a chunk (c, D, N), written into ``out``, ``T``, ``A``, ``U`` (slices of the batch's arrays)."""
    K = Zc[:, :, :n_keys]  # (c, D, n_keys) keys = values, a view
    np.matmul(W, Zc, out=T)  # (c, D, N)
    _softmax_keys_(np.matmul(np.swapaxes(K, -1, -2), T, out=A))  # (c, n_keys, N) scores K^T T, softmax in place
    np.matmul(K, A, out=U)  # (c, D, N) attended values
    if out.dtype == np.result_type(V, U):
        np.add(np.matmul(V, U, out=out), Zc, out=out)  # residual
    else:  # float32 tokens, float64 weights: add in float64, round once
        np.add(V @ U, Zc, out=out)


def _full_backward_chunk(G, Zc, W, V, n_keys: int, T, A, U, dZ):
    """Backward of :func:`_full_chunk` on a chunk: writes ``dZ`` and returns the chunk's ``(dW, dV)``."""
    K = Zc[:, :, :n_keys]
    dV = _batch_sum(G @ np.swapaxes(U, -1, -2))  # out = Z + V U
    dU = V.T @ G  # (c, D, N)
    dK = dU @ np.swapaxes(A, -1, -2)  # (c, D, n_keys) through the values
    dA = np.swapaxes(K, -1, -2) @ dU  # (c, n_keys, N)
    dA -= np.einsum("bdq,bdq->bq", U, dU)[:, None, :]  # softmax backward: <A, dA> = <U, dU>
    dS = np.multiply(dA, A, out=dA)  # (c, n_keys, N), in place
    dK += T @ np.swapaxes(dS, -1, -2)  # through the keys
    dT = K @ dS  # (c, D, N)
    dW = _batch_sum(dT @ np.swapaxes(Zc, -1, -2))  # T = W Z
    np.add(W.T @ dT, G, out=dZ)  # residual + W^T dT
    dZ[:, :, :n_keys] += dK
    return dW, dV


def _full_task_bytes(Z, n_keys: int) -> int:
    """Bytes of one task's tokens and attention weights, the unit :func:`_chunks` counts."""
    D, N = Z.shape[-2:]
    return max(Z.itemsize, 8) * N * (D + n_keys)


def _full_forward(Z, W, V, n_keys: int) -> tuple[np.ndarray, AttentionCache]:
    lead, (D, N) = Z.shape[:-2], Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)
    B, dtype = Zb.shape[0], np.result_type(W, Z)
    out, T, U = np.empty(Zb.shape, Z.dtype), np.empty((B, D, N), dtype), np.empty((B, D, N), dtype)
    A = np.empty((B, n_keys, N), dtype)
    slices = _chunks(B, _full_task_bytes(Z, n_keys))
    _map_chunks(lambda i: _full_chunk(Zb[slices[i]], W, V, n_keys, *(x[slices[i]] for x in (out, T, A, U))),
                len(slices))
    cache = AttentionCache(Z, W, V, n_keys, False, T.reshape(lead + (D, N)), A.reshape(lead + (n_keys, N)),
                           U.reshape(lead + (D, N)))
    return out.reshape(Z.shape), cache


def _full_backward(dout, cache: AttentionCache):
    Zb, Tb, Ab, Ub = _flat(cache)
    D = Zb.shape[1]
    G = dout.reshape(Zb.shape)
    dZ = np.empty(Zb.shape, np.result_type(dout, cache.Z))
    slices = _chunks(Zb.shape[0], _full_task_bytes(Zb, cache.n_keys))

    def task(i):
        s = slices[i]
        return _full_backward_chunk(G[s], Zb[s], cache.W, cache.V, cache.n_keys, Tb[s], Ab[s], Ub[s], dZ[s])

    parts = _map_chunks(task, len(slices))
    dtype = np.result_type(dout, cache.T)
    dW = _add_in_order([p[0] for p in parts], (D, D), dtype)
    dV = _add_in_order([p[1] for p in parts], (D, D), dtype)
    return dZ.reshape(cache.Z.shape), dW, dV


def _looped_full(Z, W, V, n_keys: int, depth: int, trajectory: bool = False) -> np.ndarray:
    """``depth`` full layers keeping no caches: each chunk runs every application before the next chunk.

    Returns Z_L (a new array), or with ``trajectory=True`` the query column after each
    application, shape (depth + 1, ..., D).
    """
    lead, (D, N) = Z.shape[:-2], Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)
    B, dtype = Zb.shape[0], np.result_type(W, Z)
    out = None if trajectory else np.empty(Zb.shape, Z.dtype)
    queries = np.empty((depth + 1, B, D), Z.dtype) if trajectory else None
    slices = _chunks(B, _full_task_bytes(Z, n_keys))

    def task(i):
        s = slices[i]
        c = s.stop - s.start
        z, T, U, A = Zb[s], np.empty((c, D, N), dtype), np.empty((c, D, N), dtype), np.empty((c, n_keys, N), dtype)
        buffers = (np.empty((c, D, N), Z.dtype), np.empty((c, D, N), Z.dtype))  # input and output, in turn
        if trajectory:
            queries[0, s] = z[:, :, -1]
        for layer in range(depth):
            _full_chunk(z, W, V, n_keys, buffers[layer % 2], T, A, U)
            z = buffers[layer % 2]
            if trajectory:
                queries[layer + 1, s] = z[:, :, -1]
        if not trajectory:
            out[s] = z

    _map_chunks(task, len(slices))
    if trajectory:
        return queries.reshape((depth + 1,) + lead + (D,))
    return out.reshape(Z.shape)


def _looped_with_cache(Z, W, V, n_keys: int, depth: int):
    """``depth`` full layers with their caches; each chunk runs every application before the next chunk."""
    lead, (D, N) = Z.shape[:-2], Z.shape[-2:]
    Zb = Z.reshape(-1, D, N)
    B, dtype = Zb.shape[0], np.result_type(W, Z)
    outs = [np.empty(Zb.shape, Z.dtype) for _ in range(depth)]
    Ts, Us = [np.empty((B, D, N), dtype) for _ in range(depth)], [np.empty((B, D, N), dtype) for _ in range(depth)]
    As = [np.empty((B, n_keys, N), dtype) for _ in range(depth)]
    slices = _chunks(B, _full_task_bytes(Z, n_keys))

    def task(i):
        s = slices[i]
        z = Zb[s]
        for layer in range(depth):
            _full_chunk(z, W, V, n_keys, outs[layer][s], Ts[layer][s], As[layer][s], Us[layer][s])
            z = outs[layer][s]

    _map_chunks(task, len(slices))
    inputs = [Z] + [o.reshape(Z.shape) for o in outs[:-1]]
    caches = [AttentionCache(inputs[k], W, V, n_keys, False, Ts[k].reshape(lead + (D, N)),
                             As[k].reshape(lead + (n_keys, N)), Us[k].reshape(lead + (D, N))) for k in range(depth)]
    return (outs[-1].reshape(Z.shape) if depth else Z), caches


def _looped_backward(dout, caches):
    """Backward through ``caches`` (full or query-only, any weights): each chunk runs every layer backwards.

    ``dW``, ``dV`` are each chunk's sum over the layers (last layer first), then the
    chunks' sums added in chunk order.
    """
    D, N = dout.shape[-2:]
    G = dout.reshape(-1, D, N)
    flat = [_flat(cache) for cache in caches]
    dZ = np.empty(G.shape, np.result_type(dout, *(cache.Z for cache in caches)))
    slices = _chunks(G.shape[0], max((_full_task_bytes(c.Z, c.n_keys) for c in caches), default=8 * D * N))

    def task(i):
        s = slices[i]
        g, dW, dV = G[s], None, None
        for cache, (Zb, Tb, Ab, Ub) in zip(reversed(caches), reversed(flat)):
            if cache.query_only:
                part = AttentionCache(Zb[s], cache.W, cache.V, cache.n_keys, True, Tb[s], Ab[s], Ub[s])
                g, gW, gV = _query_backward(g, part)
            else:
                dg = np.empty(g.shape, np.result_type(g, Zb))
                gW, gV = _full_backward_chunk(g, Zb[s], cache.W, cache.V, cache.n_keys, Tb[s], Ab[s], Ub[s], dg)
                g = dg
            dW, dV = (gW, gV) if dW is None else (dW + gW, dV + gV)
        dZ[s] = g
        return dW, dV

    parts = _map_chunks(task, len(slices)) if caches else []
    dtype = np.result_type(dout, *(cache.T for cache in caches))
    dW = _add_in_order([p[0] for p in parts], (D, D), dtype)
    dV = _add_in_order([p[1] for p in parts], (D, D), dtype)
    return (dZ.reshape(dout.shape) if caches else dout), dW, dV


def _batch_sum(M) -> np.ndarray:
    """Sum a (..., D, D) array over its leading (batch) dimensions."""
    return M.reshape((-1,) + M.shape[-2:]).sum(axis=0)
