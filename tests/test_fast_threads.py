"""The fast kernels in chunks of tasks and on several threads (ngdformer.fast).

Every fast function against its textbook twin (and the per-token loop) on one and on
two threads; the same bits on a second run and on another number of threads. The
chunks are made tiny here (``fast.CHUNK_BYTES`` set to a few tasks' bytes, or one byte
for one task per chunk) so that small batches split: B not a multiple of the chunk,
B = 1, B smaller than a chunk, and unbatched input. No timings: speed is measured by
``benchmarks/run.py``.
"""

import threading
from contextlib import contextmanager

import numpy as np
import pytest
import threadpoolctl
from hypothesis import given, strategies as st

from ngdformer import (assert_gradients_close, attention_backward, attention_forward, attention_naive,
                       check_directions, context_is_inert, embed, fast, looped_backward, looped_forward,
                       looped_forward_with_cache, ngd_weights, read_weights, sample_tasks)
from ngdformer.fast import _chunks, _map_chunks, _one_step_loss, _query_backward, _query_forward
from ngdformer.training import one_step_batch
from numerics import loop_scale, scaled_error

SEEDS = st.integers(0, 2**32 - 1)
LEADS = st.sampled_from([(), (1,), (2,), (3,), (5,), (2, 3)])  # unbatched, B = 1, B below / not a multiple of a chunk
CHUNK_TASKS = st.sampled_from([0, 1, 2, 4, None])  # tasks per chunk of the full path; 0: one byte (one task), None: all


@contextmanager
def running(threads, chunk_bytes=None):
    """Run the fast kernels on ``threads`` threads with chunks of ``chunk_bytes`` (default: the module's)."""
    previous_threads, previous_bytes = fast.set_num_threads(threads), fast.CHUNK_BYTES
    fast.CHUNK_BYTES = previous_bytes if chunk_bytes is None else chunk_bytes
    try:
        yield
    finally:
        fast.set_num_threads(previous_threads)
        fast.CHUNK_BYTES = previous_bytes


def _chunk_bytes(tasks, Z, n_keys):
    """CHUNK_BYTES giving ``tasks`` tasks per chunk of the full path (0: one byte, None: the whole batch)."""
    if tasks is None:
        return 2**62
    return max(1, tasks * Z.itemsize * Z.shape[-1] * (Z.shape[-2] + n_keys))


def _layer(seed, lead, d, n_context, extra, inert=False):
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n_context + 1 + extra
    Z = rng.standard_normal(lead + (D, N))
    if inert:  # only W11, W12, V21 non-zero: the query-only loop is the looped model
        W, V = np.zeros((D, D)), np.zeros((D, D))
        W[:d] = 0.5 * rng.standard_normal((d, D)) / np.sqrt(d)
        V[d:, :d] = 0.5 * rng.standard_normal((d, d)) / np.sqrt(d)
    else:
        W, V = 0.5 / np.sqrt(D) * rng.standard_normal((2, D, D))
    return Z, W, V, rng.standard_normal(Z.shape), rng


def _close(got, expect, scale=None):
    """Agreement to 1e-12 of the size of the numbers (``scale``, default the largest entry of ``expect``)."""
    got, expect = np.asarray(got), np.asarray(expect)
    assert got.shape == expect.shape
    scale = max(float(np.max(np.abs(expect), initial=0.0)), 1e-300) if scale is None else scale
    assert scaled_error(got, expect, scale) <= 1e-12


def _all_fast(Z, W, V, G, n_context, depth, attend_self):
    """Every fast function on one input: a dict of name -> tuple of arrays."""
    keys = Z.shape[-1] if attend_self else n_context
    out = {}
    for query_only in (False, True):
        o, cache = fast.attention_forward(Z, W, V, n_context, attend_self=attend_self, query_only=query_only)
        out[f"forward q={query_only}"] = (o, cache.T, cache.A, cache.U)
        out[f"backward q={query_only}"] = fast.attention_backward(G, cache)
    out["query_loop"] = (fast.query_loop(Z, W, V, n_context, depth, attend_self=attend_self),)
    out["looped_forward"] = (fast.looped_forward(Z, W, V, n_context, depth, attend_self=attend_self),)
    out["trajectory"] = (fast.looped_trajectory(Z, W, V, n_context, depth, attend_self=attend_self),)
    ZL, caches = fast.looped_forward_with_cache(Z, W, V, n_context, depth, attend_self=attend_self)
    out["with_cache"] = (ZL,) + tuple(x for c in caches for x in (c.T, c.A, c.U))
    out["looped_backward"] = fast.looped_backward(G, caches)
    if context_is_inert(W, V) or depth <= 1:
        out["looped query_only"] = (fast.looped_forward(Z, W, V, n_context, depth, attend_self=attend_self,
                                                        query_only=True),)
    assert keys  # the flag reached the kernels: n_keys is N or n_context
    return out


@given(seed=SEEDS, lead=LEADS, d=st.integers(1, 3), n_context=st.integers(1, 5), extra=st.integers(0, 2),
       depth=st.integers(0, 3), attend_self=st.booleans(), inert=st.booleans(), chunk=CHUNK_TASKS)
def test_fast_functions_give_the_same_bits_on_any_threads_and_twice(seed, lead, d, n_context, extra, depth,
                                                                    attend_self, inert, chunk):
    """Chunk boundaries do not move with the threads and sums add chunks in order: bit for bit."""
    Z, W, V, G, _ = _layer(seed, lead, d, n_context, extra, inert)
    chunk_bytes = _chunk_bytes(chunk, Z, n_context)
    with running(1, chunk_bytes):
        one = _all_fast(Z, W, V, G, n_context, depth, attend_self)
    with running(2, chunk_bytes):
        two = _all_fast(Z, W, V, G, n_context, depth, attend_self)
        again = _all_fast(Z, W, V, G, n_context, depth, attend_self)
    assert one.keys() == two.keys() == again.keys()
    for name in one:
        for a, b, c in zip(one[name], two[name], again[name]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: 1 vs 2 threads")
            np.testing.assert_array_equal(b, c, err_msg=f"{name}: two runs on 2 threads")


@given(seed=SEEDS, lead=LEADS, d=st.integers(1, 3), n_context=st.integers(1, 5), extra=st.integers(0, 2),
       attend_self=st.booleans(), query_only=st.booleans(), chunk=CHUNK_TASKS, threads=st.sampled_from([1, 2]))
def test_one_layer_in_chunks_equals_the_textbook_and_the_token_loop(seed, lead, d, n_context, extra, attend_self,
                                                                     query_only, chunk, threads):
    Z, W, V, G, _ = _layer(seed, lead, d, n_context, extra)
    options = dict(attend_self=attend_self, query_only=query_only)
    with running(threads, _chunk_bytes(chunk, Z, n_context)):
        out, cache = fast.attention_forward(Z, W, V, n_context, **options)
        grads = fast.attention_backward(G, cache)
        grads_of_textbook_cache = fast.attention_backward(G, attention_forward(Z, W, V, n_context, **options)[1])
    out_ref, cache_ref = attention_forward(Z, W, V, n_context, **options)
    _close(out, out_ref)
    _close(out, attention_naive(Z, W, V, n_context, **options))
    for name in ("T", "A", "U"):
        _close(getattr(cache, name), getattr(cache_ref, name))
    expect = attention_backward(G, cache_ref)
    grad_scale = max(np.max(np.abs(g)) for g in expect + (G,))  # a gradient can be exactly 0 in one route only
    for got in (grads, grads_of_textbook_cache):
        for g, e in zip(got, expect):
            _close(g, e, grad_scale)


@given(seed=SEEDS, lead=LEADS, d=st.integers(1, 3), n_context=st.integers(1, 5), extra=st.integers(0, 2),
       depth=st.integers(0, 4), attend_self=st.booleans(), inert=st.booleans(), chunk=CHUNK_TASKS,
       threads=st.sampled_from([1, 2]))
def test_loops_in_chunks_equal_the_textbook_loops(seed, lead, d, n_context, extra, depth, attend_self, inert, chunk,
                                                   threads):
    Z, W, V, G, _ = _layer(seed, lead, d, n_context, extra, inert)
    scale = loop_scale(Z, V, depth)
    with running(threads, _chunk_bytes(chunk, Z, n_context)):
        ZL = fast.looped_forward(Z, W, V, n_context, depth, attend_self=attend_self)
        ZLc, caches = fast.looped_forward_with_cache(Z, W, V, n_context, depth, attend_self=attend_self)
        grads = fast.looped_backward(G, caches)
        traj = fast.looped_trajectory(Z, W, V, n_context, depth, attend_self=attend_self)
        queries = fast.query_loop(Z, W, V, n_context, depth, attend_self=attend_self)
    expect, caches_ref = looped_forward_with_cache(Z, W, V, n_context, depth, attend_self=attend_self)
    assert scaled_error(ZL, expect, scale) <= 1e-12 and scaled_error(ZLc, expect, scale) <= 1e-12
    expect_grads = looped_backward(G, caches_ref)
    grad_scale = max(np.max(np.abs(g)) for g in expect_grads + (G,))
    for g, e in zip(grads, expect_grads):
        assert g.shape == e.shape and scaled_error(g, e, grad_scale) <= 1e-12
    Zt, steps = Z, [read_weights(Z)]
    for _ in range(depth):  # the textbook full layer, one application at a time
        Zt = attention_forward(Zt, W, V, n_context, attend_self=attend_self)[0]
        steps.append(read_weights(Zt))
    assert traj.shape == (depth + 1,) + lead + (Z.shape[-2] // 2,)
    assert scaled_error(traj, np.stack(steps), scale) <= 1e-12
    Zq = Z
    for _ in range(depth):  # the query-column model: the textbook query-only layer, depth times
        Zq = attention_forward(Zq, W, V, n_context, attend_self=attend_self, query_only=True)[0]
    assert scaled_error(queries, Zq, scale) <= 1e-12
    if inert:  # the query-only loop is the looped model; its caches go through the fast backward too
        assert scaled_error(queries, looped_forward(Z, W, V, n_context, depth, attend_self=attend_self,
                                                    query_only=True), scale) <= 1e-12
        _, caches_q = looped_forward_with_cache(Z, W, V, n_context, depth, attend_self=attend_self, query_only=True)
        with running(threads, _chunk_bytes(chunk, Z, n_context)):
            grads_q = fast.looped_backward(G, caches_q)
        expect_q = looped_backward(G, caches_q)
        grad_scale = max(np.max(np.abs(g)) for g in expect_q + (G,))
        for g, e in zip(grads_q, expect_q):
            assert g.shape == e.shape and scaled_error(g, e, grad_scale) <= 1e-12


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B, per_chunk", [(1, 1), (5, 2), (3, 4), (7, 3), (6, 3)])
def test_chunk_boundaries_cover_the_batch_once(B, per_chunk, threads):
    """B = 1, B not a multiple of the chunk, B smaller than the chunk, B a multiple: each task in exactly one chunk."""
    slices = _chunks(B, fast.CHUNK_BYTES // per_chunk)
    assert [s.start for s in slices] == list(range(0, B, per_chunk))
    assert slices[-1].stop == B and all(0 < s.stop - s.start <= per_chunk for s in slices)
    seen = np.zeros(B, int)

    def task(i):
        seen[slices[i]] += 1
        return i

    with running(threads):
        assert _map_chunks(task, len(slices)) == list(range(len(slices)))  # results in chunk order
    np.testing.assert_array_equal(seen, 1)
    assert _chunks(0, 100) == [] and _map_chunks(task, 0) == []


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B", [1, 3, 64, 300])
def test_lean_one_step_loss_has_the_bits_of_the_query_layer_and_its_backward(B, threads):
    """The training kernel computes only the query column and dW, dV, and gets exactly what the layer pair gets."""
    rng = np.random.default_rng(B)
    d, n = 3, 7
    Z, target = one_step_batch(rng, B, n, d, 0.5)
    W, V = 0.3 * rng.standard_normal((2, 2 * d, 2 * d))
    W[d:] = 0.0  # rows of W that are zero are skipped: the kernel must still be exact
    with running(threads, 200 * Z.itemsize):  # several chunks of the query path for B > 3
        J, dW, dV = _one_step_loss(W, V, Z, target)
        out, cache = _query_forward(Z, W, V, n)
    r = out[..., -1] - target
    dout = np.zeros_like(out)
    dout[..., -1] = r / B
    _, dW_ref, dV_ref = _query_backward(dout, cache)
    assert J == 0.5 * float(np.sum(r * r)) / B
    np.testing.assert_array_equal(dW, dW_ref)
    np.testing.assert_array_equal(dV, dV_ref)
    out_t, cache_t = attention_forward(Z, W, V, n, query_only=True)  # and the textbook pair, to round-off
    _, dW_t, dV_t = attention_backward(dout, cache_t)
    _close(dW, dW_t)
    _close(dV, dV_t)
    assert abs(J - 0.5 * np.sum((out_t[..., -1] - target) ** 2) / B) <= 1e-12 * J


def test_lean_one_step_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    Z, target = one_step_batch(rng, 5, 6, 2, 0.5)
    W, V = 0.4 * rng.standard_normal((2, 4, 4))
    _, dW, dV = _one_step_loss(W, V, Z, target)
    assert_gradients_close(*check_directions(lambda w: _one_step_loss(w, V, Z, target)[0], W, dW, rng, 4), "dW")
    assert_gradients_close(*check_directions(lambda v: _one_step_loss(W, v, Z, target)[0], V, dV, rng, 4), "dV")


# --- the thread setting ----------------------------------------------------------------------------------


def _blas_threads():
    return max((info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"),
               default=1)


def test_default_threads_follow_the_blas_setting():
    previous = fast.set_num_threads(None)
    try:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            assert fast.get_num_threads() == 1  # as under OPENBLAS_NUM_THREADS=1
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            assert fast.get_num_threads() == max(1, min(_blas_threads(), len(_usable_cores())))
        fast.set_num_threads(3)  # the explicit setting wins over the BLAS's
        assert fast.get_num_threads() == 3
    finally:
        fast.set_num_threads(previous)


def _usable_cores():
    import os

    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", fast.MAX_THREADS + 1])
def test_set_num_threads_refuses_a_bad_count(bad):
    before = fast.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        fast.set_num_threads(bad)
    assert fast.get_num_threads() == before


def test_set_num_threads_returns_the_previous_setting():
    previous = fast.set_num_threads(2)
    try:
        assert fast.set_num_threads(1) == 2 and fast.get_num_threads() == 1
    finally:
        fast.set_num_threads(previous)


def test_workers_run_blas_on_one_thread_and_the_setting_comes_back():
    """Two levels of threads would oversubscribe the cores: inside the chunks the BLAS runs one thread."""
    blas = [lib for lib in threadpoolctl.ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    if not blas:
        pytest.skip("no BLAS found by threadpoolctl")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [lib.num_threads for lib in blas]
        seen = []

        def task(i):
            seen.append(max(lib.num_threads for lib in blas))

        with running(2):
            _map_chunks(task, 8)
        assert seen == [1] * 8
        assert [lib.num_threads for lib in blas] == before  # restored
        with running(1):
            seen.clear()
            _map_chunks(task, 2)
        assert seen == [max(before)] * 2  # one thread: the BLAS is left alone


def test_the_pool_is_made_once_and_reused():
    with running(2):
        _map_chunks(lambda i: i, 4)
        pool = fast._pool
        _map_chunks(lambda i: i, 4)
        assert fast._pool is pool and pool is not None


def test_an_error_in_a_chunk_reaches_the_caller():
    def task(i):
        if i == 3:
            raise ZeroDivisionError("chunk 3")
        return i

    for threads in (1, 2):
        with running(threads), pytest.raises(ZeroDivisionError, match="chunk 3"):
            _map_chunks(task, 6)


def test_the_callers_errstate_holds_in_the_workers():
    """A worker thread runs in a copy of the caller's context: np.errstate(over='raise') is not lost."""
    def task(i):
        return np.float64(1e308) * np.float64(10.0)

    with running(2), np.errstate(over="raise"), pytest.raises(FloatingPointError):
        _map_chunks(task, 4)


def test_calls_from_several_threads_at_once_agree():
    X, y, _ = sample_tasks(np.random.default_rng(3), 40, 12, 3)
    Z, (W, V) = embed(X, y), ngd_weights(3, 0.5)
    G = np.random.default_rng(4).standard_normal(Z.shape)
    with running(2, 3 * Z.itemsize * Z.shape[-1] * (Z.shape[-2] + 12)):
        expect = fast.attention_backward(G, fast.attention_forward(Z, W, V, 12)[1])
        results = [None] * 4

        def caller(k):
            results[k] = fast.attention_backward(G, fast.attention_forward(Z, W, V, 12)[1])

        callers = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
    for got in results:
        for g, e in zip(got, expect):
            np.testing.assert_array_equal(g, e)
