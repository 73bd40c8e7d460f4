"""The fast twins (ngdformer.fast) against the textbook layer, the per-token loop and finite differences.

The query path skips rows of K that meet zero rows of W, so the weights here have
random zero blocks (the construction's shape among them) as well as dense entries.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import (assert_gradients_close, attention_backward, attention_forward, attention_naive,
                       check_directions, context_is_inert, embed, fast, looped_forward, ngd, ngd_weights,
                       numeric_jacobian, read_weights, rel_error, sample_tasks, softmax)
from ngdformer.checks import MAX_DEPTH
from ngdformer.fast import _softmax_keys_, _support
from numerics import loop_scale, scaled_error

SEEDS = st.integers(0, 2**32 - 1)
OPTIONS = [dict(attend_self=a, query_only=q) for a, q in itertools.product([False, True], repeat=2)]
OPTIONS_ST = st.sampled_from(OPTIONS)
LEADS = st.sampled_from([(), (1,), (2,), (3,), (2, 2)])  # leading batch dimensions, none to two


def _sparse(rng, D, zero_fraction):
    """A (D, D) matrix whose rows and columns are zeroed at random (zero_fraction 0: dense)."""
    M = rng.standard_normal((D, D))
    M[rng.random(D) < zero_fraction, :] = 0.0
    M[:, rng.random(D) < zero_fraction] = 0.0
    return M


def _layer(seed, lead, d, n_context, extra, zero_fraction=0.0):
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n_context + 1 + extra  # `extra` columns are neither keys nor the last query
    Z = rng.standard_normal(lead + (D, N))
    W, V = 0.7 * _sparse(rng, D, zero_fraction), _sparse(rng, D, zero_fraction)
    G = rng.standard_normal(Z.shape)
    return Z, W, V, G, rng


def _inert_weights(rng, d, eta=0.3):
    """Random weights with only the blocks W11, W12, V21 non-zero: the context can never feed back."""
    W, V = np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    W[:d, :] = 0.3 * rng.standard_normal((d, 2 * d)) / np.sqrt(d)
    V[d:, :d] = eta * rng.standard_normal((d, d)) / np.sqrt(d)
    return W, V


# --- forward: fast = reference = naive ------------------------------------------------------------------


@given(seed=SEEDS, lead=LEADS, d=st.integers(1, 3), n_context=st.integers(1, 5), extra=st.integers(0, 2),
       zero_fraction=st.sampled_from([0.0, 0.3, 0.7, 1.0]), options=OPTIONS_ST)
def test_fast_forward_equals_textbook_and_naive(seed, lead, d, n_context, extra, zero_fraction, options):
    Z, W, V, _, _ = _layer(seed, lead, d, n_context, extra, zero_fraction)
    out, cache = fast.attention_forward(Z, W, V, n_context, **options)
    out_ref, cache_ref = attention_forward(Z, W, V, n_context, **options)
    assert out.shape == Z.shape and out.dtype == Z.dtype
    np.testing.assert_allclose(out, out_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(out, attention_naive(Z, W, V, n_context, **options), rtol=1e-12, atol=1e-12)
    for name in ("T", "A", "U"):  # the caches hold the same intermediates, in the same shapes
        quick, ref = getattr(cache, name), getattr(cache_ref, name)
        assert quick.shape == ref.shape, name
        np.testing.assert_allclose(quick, ref, rtol=1e-13, atol=1e-13, err_msg=name)
    assert cache.n_keys == cache_ref.n_keys and cache.query_only == cache_ref.query_only
    if options["query_only"]:  # the other columns untouched; the query column is the full layer's, at any weights
        np.testing.assert_array_equal(out[..., :-1], Z[..., :-1])
        full = fast.attention_forward(Z, W, V, n_context, attend_self=options["attend_self"])[0]
        np.testing.assert_allclose(out[..., -1], full[..., -1], rtol=1e-13, atol=1e-13)


# --- backward: fast = reference, and finite differences --------------------------------------------------


@given(seed=SEEDS, lead=LEADS, d=st.integers(1, 3), n_context=st.integers(1, 5), extra=st.integers(0, 2),
       zero_fraction=st.sampled_from([0.0, 0.3, 0.7]), options=OPTIONS_ST)
def test_fast_backward_equals_textbook_on_either_cache(seed, lead, d, n_context, extra, zero_fraction, options):
    Z, W, V, G, _ = _layer(seed, lead, d, n_context, extra, zero_fraction)
    cache = fast.attention_forward(Z, W, V, n_context, **options)[1]
    cache_ref = attention_forward(Z, W, V, n_context, **options)[1]
    expect = attention_backward(G, cache_ref)
    for got in (fast.attention_backward(G, cache), fast.attention_backward(G, cache_ref), attention_backward(G, cache)):
        for name, g, e in zip(("dZ", "dW", "dV"), got, expect):
            assert g.shape == e.shape, name
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12, err_msg=name)


@given(seed=SEEDS, lead=st.sampled_from([(), (1,), (2,)]), d=st.integers(1, 2), n_context=st.integers(1, 3),
       extra=st.integers(0, 1), zero_fraction=st.sampled_from([0.0, 0.5]), options=OPTIONS_ST)
def test_fast_backward_full_jacobian_and_directions(seed, lead, d, n_context, extra, zero_fraction, options):
    """Every entry of dZ, dW, dV, including those of weight entries that are zero (the skipped rows)."""
    Z, W, V, G, rng = _layer(seed, lead, d, n_context, extra, zero_fraction)
    out, cache = fast.attention_forward(Z, W, V, n_context, **options)
    dZ, dW, dV = fast.attention_backward(G, cache)

    def layer(Z_, W_, V_):
        return fast.attention_forward(Z_, W_, V_, n_context, **options)[0]

    fs = {"dZ": (Z, dZ, lambda t: layer(t, W, V)), "dW": (W, dW, lambda t: layer(Z, t, V)),
          "dV": (V, dV, lambda t: layer(Z, W, t))}
    for name, (x, dx, F) in fs.items():
        num, ana = check_directions(lambda t: float(np.sum(G * F(t))), x, dx, rng, directions=3)
        assert_gradients_close(num, ana, f"{name} {options} (directions)")
        rows = []
        for k in range(out.size):  # one backward call per output entry: the rows of the Jacobian
            e = np.zeros(out.size)
            e[k] = 1.0
            rows.append(fast.attention_backward(e.reshape(out.shape), cache)[list(fs).index(name)])
        J = numeric_jacobian(F, x).reshape((out.size,) + x.shape)
        assert_gradients_close(J, np.stack(rows), f"{name} {options} (full Jacobian)")


def test_backward_rejects_a_gradient_of_the_wrong_shape():
    Z, W, V, G, _ = _layer(0, (2,), 2, 3, 0)
    for options in OPTIONS:
        cache = fast.attention_forward(Z, W, V, 3, **options)[1]
        with pytest.raises(ValueError, match="dout"):
            fast.attention_backward(G[..., :-1], cache)


def test_mixed_precision_follows_numpy_promotion():
    """float32 tokens with float64 weights give a float64 layer (as the matrix products would);
    all-float32 input stays float32."""
    Z, W, V, G, _ = _layer(1, (2,), 2, 4, 1)
    Z32 = Z.astype(np.float32)
    for options in OPTIONS:
        out, cache = fast.attention_forward(Z32, W, V, 4, **options)  # float64 weights
        out_ref, cache_ref = attention_forward(Z32, W, V, 4, **options)
        assert out.dtype == out_ref.dtype == np.float64
        out32, _ = fast.attention_forward(Z32, W.astype(np.float32), V.astype(np.float32), 4, **options)
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out, out_ref, rtol=1e-6, atol=1e-6)
        for g, e in zip(fast.attention_backward(G, cache), attention_backward(G, cache_ref)):
            assert g.dtype == e.dtype
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


# --- helpers -------------------------------------------------------------------------------------------


@given(seed=SEEDS, scale=st.sampled_from([0.1, 1.0, 30.0, 1e3, 1e300]), axis=st.sampled_from([-1, -2]))
def test_in_place_softmax_equals_softmax(seed, scale, axis):
    rng = np.random.default_rng(seed)
    S = scale * rng.standard_normal((2, 5, 4))
    expect = softmax(S, axis=axis)
    got = _softmax_keys_(S.copy(), axis=axis)
    np.testing.assert_allclose(got, expect, rtol=1e-15, atol=0)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=1e-14)


def test_support_is_the_smallest_covering_range():
    M = np.zeros((6, 6))
    assert _support(M, 1) == slice(0, 0) and _support(M, 0) == slice(0, 0)
    M[2, 4] = M[3, 1] = -1.0
    assert _support(M, 1) == slice(2, 4)  # rows 2..3
    assert _support(M, 0) == slice(1, 5)  # columns 1..4
    W, V = ngd_weights(3, 0.5)
    assert _support(W, 1) == slice(0, 3)  # W* reads only the top halves of the keys ...
    assert _support(V, 0) == slice(0, 3)  # ... and V* only the top halves of the values


# --- the query loop ---------------------------------------------------------------------------------------


@given(seed=SEEDS, lead=LEADS, d=st.integers(1, 3), n_context=st.integers(1, 6), extra=st.integers(0, 2),
       depth=st.integers(0, 6), zero_fraction=st.sampled_from([0.0, 0.5]), attend_self=st.booleans())
def test_query_loop_equals_repeated_query_layers(seed, lead, d, n_context, extra, depth, zero_fraction, attend_self):
    Z, W, V, _, _ = _layer(seed, lead, d, n_context, extra, zero_fraction)
    W, V = 0.5 * W, 0.3 * V  # keep L applications of random weights tame
    expect = Z
    for _ in range(depth):
        expect = attention_forward(expect, W, V, n_context, attend_self=attend_self, query_only=True)[0]
    got = fast.query_loop(Z, W, V, n_context, depth, attend_self=attend_self)
    assert got.shape == Z.shape and got is not Z
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got[..., :-1], Z[..., :-1])
    if depth <= 1 or context_is_inert(W, V):  # the looped model takes the query path only where it is exact
        np.testing.assert_array_equal(fast.looped_forward(Z, W, V, n_context, depth, query_only=True,
                                                          attend_self=attend_self), got)


@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 8), d=st.integers(1, 4), depth=st.integers(1, 8),
       construction=st.booleans(), attend_self=st.booleans())
def test_query_loop_is_the_full_model_when_the_context_is_inert(seed, B, n, d, depth, construction, attend_self):
    """The construction, and any weights whose unexcited blocks are zero: the query column is exact."""
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d)
    w0 = rng.standard_normal((B, d))
    W, V = ngd_weights(d, float(rng.uniform(0.05, 0.5))) if construction else _inert_weights(rng, d)
    assert context_is_inert(W, V)
    Z = embed(X, y, w0)
    full = fast.looped_forward(Z, W, V, n, depth, attend_self=attend_self)
    quick = fast.looped_forward(Z, W, V, n, depth, attend_self=attend_self, query_only=True)
    assert scaled_error(quick[..., -1], full[..., -1], loop_scale(Z, V, depth)) <= 1e-14


def test_query_loop_differs_from_the_full_model_when_the_context_feeds_back():
    """The test above can fail: with the block V11 switched on, the full layer moves the keys the query reads."""
    rng = np.random.default_rng(0)
    X, y, _ = sample_tasks(rng, 4, 6, 3)
    W, V = ngd_weights(3, 0.5)
    V[:3, :3] = 0.3 * np.eye(3)  # V11: context top halves now change from layer to layer
    assert not context_is_inert(W, V)
    Z = embed(X, y, rng.standard_normal((4, 3)))
    full = fast.looped_forward(Z, W, V, 6, 4)
    query_model = fast.query_loop(Z, W, V, 6, 4)
    assert rel_error(query_model[..., -1], full[..., -1]) > 1e-3
    for looped in (looped_forward, fast.looped_forward):  # so the looped model refuses to take that shortcut
        with pytest.raises(ValueError, match="context_is_inert"):
            looped(Z, W, V, 6, 4, query_only=True)
        one = looped(Z, W, V, 6, 1, query_only=True)  # one application is exact at any weights
        assert rel_error(one[..., -1], looped(Z, W, V, 6, 1)[..., -1]) < 1e-14


def test_query_loop_runs_ngd_and_validates():
    rng = np.random.default_rng(3)
    X, y, _ = sample_tasks(rng, 16, 20, 5)
    w0 = np.zeros((16, 5))
    W, V = ngd_weights(5, 0.1)
    Z = embed(X, y, w0)
    Z_copy = Z.copy()
    out = fast.query_loop(Z, W, V, 20, 100)
    assert rel_error(read_weights(out), ngd(w0, X, y, 0.1, 100)[-1]) <= 1e-12
    np.testing.assert_array_equal(Z, Z_copy)  # pure
    Z32 = Z.astype(np.float32)
    assert fast.query_loop(Z32, W.astype(np.float32), V.astype(np.float32), 20, 3).dtype == np.float32
    bad = Z.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="Z"):
        fast.query_loop(bad, W, V, 20, 1)
    for depth in (-1, 1.5, True):
        with pytest.raises(ValueError, match="depth"):
            fast.query_loop(Z, W, V, 20, depth)
    with pytest.raises(ValueError, match="n_context"):
        fast.query_loop(Z, W, V, 21, 1)
    with pytest.raises(ValueError, match="W"):
        fast.query_loop(Z, W[:-1], V, 20, 1)


@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 3), depth=st.integers(0, 6),
       inert=st.booleans(), attend_self=st.booleans())
def test_looped_trajectory_reads_the_textbook_loop_after_every_application(seed, B, n, d, depth, inert,
                                                                           attend_self):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d)
    W, V = _inert_weights(rng, d) if inert else (0.3 * rng.standard_normal((2 * d, 2 * d)),
                                                 0.3 * rng.standard_normal((2 * d, 2 * d)))
    Z = embed(X, y, rng.standard_normal((B, d)))
    traj = fast.looped_trajectory(Z, W, V, n, depth, attend_self=attend_self)
    assert traj.shape == (depth + 1, B, d)
    expect, Zt = [read_weights(Z)], Z
    for _ in range(depth):  # the textbook full layer, one application at a time
        Zt = attention_forward(Zt, W, V, n, attend_self=attend_self)[0]
        expect.append(read_weights(Zt))
    assert scaled_error(traj, np.stack(expect), loop_scale(Z, V, depth)) <= 1e-14


def test_looped_trajectory_with_the_construction_is_ngd():
    X, y, _ = sample_tasks(np.random.default_rng(4), 8, 12, 3)
    w0 = np.random.default_rng(5).standard_normal((8, 3))
    traj = fast.looped_trajectory(embed(X, y, w0), *ngd_weights(3, 0.25), 12, 50)
    np.testing.assert_allclose(traj, ngd(w0, X, y, 0.25, 50), rtol=1e-12, atol=1e-12)


# --- reliability: what the public functions refuse, and what they return -------------------------------------


def _overflowing_tasks():
    """Three tasks (d = 1) whose query grows by 1e308 times the key per application: task 2 overflows first.

    W = 0 gives uniform attention, so each application adds V K 1/n = (0, 1e308 k) to the
    query: with k = 0.7 (task 0) the query is inf after three applications, with k = 1
    (task 2) after two; task 1 (k = 1e-300) never.
    """
    Z = np.zeros((3, 2, 2))
    Z[:, 0, 0] = [0.7, 1e-300, 1.0]  # the one key's top entry
    W, V = np.zeros((2, 2)), np.zeros((2, 2))
    V[1, 0] = 1e308
    return Z, W, V


@pytest.mark.parametrize("threads", [1, 2])
def test_query_loop_refuses_an_iterate_that_became_non_finite(threads):
    """As `depth` calls of attention_forward would: the first application after which some query is inf is named."""
    Z, W, V = _overflowing_tasks()
    previous, chunk_bytes = fast.set_num_threads(threads), fast.CHUNK_BYTES
    fast.CHUNK_BYTES = 1  # one task per chunk: task 0's chunk sees its overflow later than task 2's
    try:
        with np.errstate(over="ignore"):
            fast.query_loop(Z, W, V, 1, 2)  # two applications: the result holds inf, as two layer calls would
            with pytest.raises(ValueError, match=r"Z contains a non-finite value \(inf\) after 2 applications"):
                fast.query_loop(Z, W, V, 1, 4)
            with pytest.raises(ValueError, match=r"after 2 applications"):
                fast.looped_trajectory(Z, W, V, 1, 3)  # the same loop underneath (these weights are inert)
            out = attention_forward(attention_forward(Z, W, V, 1, query_only=True)[0], W, V, 1, query_only=True)[0]
            with pytest.raises(ValueError, match=r"Z contains a non-finite value \(inf\)"):
                attention_forward(out, W, V, 1, query_only=True)  # what the loop's check stands for
    finally:
        fast.set_num_threads(previous)
        fast.CHUNK_BYTES = chunk_bytes


def test_looped_forward_at_depth_zero_checks_its_input_and_returns_a_new_array():
    Z, W, V, _, _ = _layer(0, (2,), 2, 3, 0)
    for query_only in (False, True):
        out = fast.looped_forward(Z, W, V, 3, 0, query_only=query_only)
        np.testing.assert_array_equal(out, Z)
        assert out is not Z and not np.shares_memory(out, Z)
        bad = Z.copy()
        bad[1, 0, 2] = np.inf
        with pytest.raises(ValueError, match=r"Z contains a non-finite value \(inf\)"):
            fast.looped_forward(bad, W, V, 3, 0, query_only=query_only)
        with pytest.raises(ValueError, match="n_context"):
            fast.looped_forward(Z, W, V, 4, 0, query_only=query_only)
        with pytest.raises(ValueError, match="W"):
            fast.looped_forward(Z, W[:, :-1], V, 3, 0, query_only=query_only)
    out, caches = fast.looped_forward_with_cache(Z, W, V, 3, 0)
    assert caches == [] and out is not Z and not np.shares_memory(out, Z)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_backward_refuses_a_non_finite_or_misshapen_dout(bad_value):
    Z, W, V, G, _ = _layer(2, (2,), 2, 3, 1)
    bad = G.copy()
    bad[1, 2, 3] = bad_value
    for options in OPTIONS:
        cache = fast.attention_forward(Z, W, V, 3, **options)[1]
        with pytest.raises(ValueError, match="dout contains a non-finite value"):
            fast.attention_backward(bad, cache)
        for shape in (G.shape[1:], (1,) + G.shape, G.shape[:-1] + (G.shape[-1] + 1,)):
            with pytest.raises(ValueError, match="dout has shape"):
                fast.attention_backward(np.ones(shape), cache)
    _, caches = fast.looped_forward_with_cache(Z, W, V, 3, 2)
    for caches_ in (caches, []):  # depth 0 too: nothing to undo, but dout is still checked
        with pytest.raises(ValueError, match="dout contains a non-finite value"):
            fast.looped_backward(bad, caches_)
    dZ, dW, dV = fast.looped_backward(G, [])
    np.testing.assert_array_equal(dZ, G)
    assert dZ is not G and not dW.any() and not dV.any()


def test_flags_must_be_true_or_false():
    Z, W, V, _, _ = _layer(3, (2,), 2, 3, 0)
    calls = {"attention_forward": lambda **f: fast.attention_forward(Z, W, V, 3, **f),
             "looped_forward": lambda **f: fast.looped_forward(Z, W, V, 3, 1, **f),
             "query_loop": lambda attend_self: fast.query_loop(Z, W, V, 3, 1, attend_self=attend_self),
             "looped_trajectory": lambda attend_self: fast.looped_trajectory(Z, W, V, 3, 1, attend_self=attend_self),
             "looped_forward_with_cache": lambda attend_self: fast.looped_forward_with_cache(
                 Z, W, V, 3, 1, attend_self=attend_self)}
    for name, call in calls.items():
        flags = ("attend_self", "query_only") if name in ("attention_forward", "looped_forward") else ("attend_self",)
        for flag in flags:
            for bad in ("no", 1, 0, None, np.float64(1.0)):
                with pytest.raises(TypeError, match=f"{flag} must be True or False"):
                    call(**{flag: bad})
            call(**{flag: np.bool_(True)})  # NumPy's bool is a bool


def test_depths_must_be_integers_in_range():
    Z, W, V, _, _ = _layer(4, (1,), 1, 2, 0)
    calls = {"query_loop": lambda L: fast.query_loop(Z, W, V, 2, L),
             "looped_forward": lambda L: fast.looped_forward(Z, W, V, 2, L),
             "looped_forward query_only": lambda L: fast.looped_forward(Z, W, V, 2, L, query_only=True),
             "looped_trajectory": lambda L: fast.looped_trajectory(Z, W, V, 2, L),
             "looped_forward_with_cache": lambda L: fast.looped_forward_with_cache(Z, W, V, 2, L)}
    for name, call in calls.items():
        for bad in (-1, 1.5, True, "2", None, MAX_DEPTH + 1):
            with pytest.raises(ValueError, match="depth"):
                call(bad)
        call(np.int64(1))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_query_path_checks_every_token_while_it_copies(threads):
    """The query path scans Z chunk by chunk: a bad entry in the last chunk is found, with the checks' message."""
    Z, W, V, _, _ = _layer(5, (7,), 2, 4, 1)
    previous, chunk_bytes = fast.set_num_threads(threads), fast.CHUNK_BYTES
    fast.CHUNK_BYTES = 2 * Z[0].nbytes  # chunks of two tasks: the last one holds one
    try:
        for where, value in (((6, 3, 5), np.nan), ((6, 0, 0), -np.inf), ((3, 1, 2), np.inf)):
            bad = Z.copy()
            bad[where] = value
            bad[6, 3, 4] = np.nan if where[0] == 3 else bad[6, 3, 4]  # a second bad entry later: the first is named
            message = f"Z contains a non-finite value ({value}); all entries must be finite"
            with pytest.raises(ValueError) as textbook:
                attention_forward(bad, W, V, 4, query_only=True)
            assert str(textbook.value) == message
            for call in (lambda z: fast.attention_forward(z, W, V, 4, query_only=True),
                         lambda z: fast.query_loop(z, W, V, 4, 2),
                         lambda z: fast.looped_forward(z, W, V, 4, 1, query_only=True),
                         lambda z: fast.looped_trajectory(z, W, V, 4, 2)):
                with pytest.raises(ValueError) as got:
                    call(bad)
                assert str(got.value) == message
        huge = Z.copy()
        huge[:, :, :] = 1.5e308  # every entry finite, their sum is not: accepted, as by the textbook layer
        W0, V0 = np.zeros_like(W), np.zeros_like(V)
        np.testing.assert_array_equal(fast.attention_forward(huge, W0, V0, 4, query_only=True)[0],
                                      attention_forward(huge, W0, V0, 4, query_only=True)[0])
    finally:
        fast.set_num_threads(previous)
        fast.CHUNK_BYTES = chunk_bytes
