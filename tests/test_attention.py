"""The hand-written attention layer: finite differences for every input, naive reference, batching, extremes."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import (assert_gradients_close, attention_backward, attention_forward, attention_naive,
                       check_directions, numeric_jacobian, softmax, softmax_backward)

SEEDS = st.integers(0, 2**32 - 1)
OPTIONS = [dict(attend_self=a, query_only=q) for a, q in itertools.product([False, True], repeat=2)]
OPTION_IDS = [f"self={o['attend_self']}-qonly={o['query_only']}" for o in OPTIONS]


def _layer(seed, B, d, n_context, extra, w_scale=0.7):
    """Random tokens (B, 2d, n_context + 1 + extra), weights, and an upstream gradient."""
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n_context + 1 + extra  # `extra` columns are neither keys nor the last query
    Z = rng.standard_normal((B, D, N))
    W = w_scale * rng.standard_normal((D, D))
    V = rng.standard_normal((D, D))
    G = rng.standard_normal((B, D, N))
    return Z, W, V, G, rng


# --- softmax -------------------------------------------------------------------------------------------


@given(seed=SEEDS, B=st.integers(1, 2), n=st.integers(1, 5), nq=st.integers(1, 3), scale=st.sampled_from([0.1, 1, 5]))
def test_softmax_backward_matches_finite_differences(seed, B, n, nq, scale):
    rng = np.random.default_rng(seed)
    s = scale * rng.standard_normal((B, n, nq))  # softmax over axis -2 (the keys), per column
    g = rng.standard_normal((B, n, nq))
    p = softmax(s)
    ds = softmax_backward(g, p)
    num, ana = check_directions(lambda t: float(np.sum(g * softmax(t))), s, ds, rng, directions=3)
    assert_gradients_close(num, ana, "softmax (directions)")
    J = numeric_jacobian(softmax, s)  # (B, n, nq, B, n, nq)
    expect = np.zeros_like(J)
    for b, q in itertools.product(range(B), range(nq)):  # diag(p) - p p^T per column, zero across columns
        pc = p[b, :, q]
        expect[b, :, q, b, :, q] = np.diag(pc) - np.outer(pc, pc)
    assert_gradients_close(J, expect, "softmax (full Jacobian)")
    assert_gradients_close(np.einsum("abc,abcxyz->xyz", g, J), ds, "softmax (vector-Jacobian product)")


def test_softmax_ties_and_huge_scores():
    s = np.full((2, 4, 3), 7.0)  # equal scores: exactly uniform
    np.testing.assert_array_equal(softmax(s), 0.25)
    np.testing.assert_array_equal(softmax_backward(np.ones_like(s), softmax(s)), 0.0)  # sums are constant
    s = np.array([[1e300], [-1e300], [1e300]])  # ties at the top, huge spread
    np.testing.assert_array_equal(softmax(s), [[0.5], [0.0], [0.5]])
    s = np.array([[3e5, -3e5], [3e5 - 1.0, 2e5]])
    p = softmax(s)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[:, 0], [1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0))], rtol=1e-15)
    np.testing.assert_array_equal(p[:, 1], [0.0, 1.0])


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e300), (np.float64, np.finfo(np.float64).max),
                                        (np.float32, 3e38), (np.float32, np.finfo(np.float32).max)])
def test_softmax_of_scores_at_the_ends_of_the_float_range_is_exact_and_silent(dtype, big):
    """s - max s can fall below the float range (-2 * big): that weight is an exact 0, with no overflow warning."""
    s = np.array([[big, -big, big, 0.0], [-big, -big, -big, -big]], dtype=dtype).T  # (4 keys, 2 queries)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(s)
        ds = softmax_backward(np.ones_like(s), p)
    assert p.dtype == dtype and ds.dtype == dtype
    np.testing.assert_array_equal(p, np.array([[0.5, 0.0, 0.5, 0.0], [0.25] * 4], dtype=dtype).T)  # ties share
    np.testing.assert_array_equal(ds, 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_softmax_refuses_non_finite_scores(bad):
    """NaN would spread silently through the layer; +-inf are not scores (mask by leaving keys out)."""
    s = np.zeros((2, 3, 2))
    s[1, 2, 0] = bad
    with pytest.raises(ValueError, match=rf"^s contains a non-finite value \({bad}\)"):
        softmax(s)
    with pytest.raises(ValueError, match=rf"^p contains a non-finite value \({bad}\)"):
        softmax_backward(np.ones_like(s), s)
    with pytest.raises(ValueError, match=rf"^dp contains a non-finite value \({bad}\)"):
        softmax_backward(s, softmax(np.zeros_like(s)))


# --- attention backward: Z (queries and keys), W, V --------------------------------------------------


def _check_attention_gradients(Z, W, V, G, rng, n_context, options, jacobian):
    out, cache = attention_forward(Z, W, V, n_context, **options)
    dZ, dW, dV = attention_backward(G, cache)
    assert dZ.shape == Z.shape and dW.shape == W.shape and dV.shape == V.shape

    def scalar(Z_, W_, V_):
        return float(np.sum(G * attention_forward(Z_, W_, V_, n_context, **options)[0]))

    for name, x, dx, f in (("dZ", Z, dZ, lambda t: scalar(t, W, V)), ("dW", W, dW, lambda t: scalar(Z, t, V)),
                           ("dV", V, dV, lambda t: scalar(Z, W, t))):
        num, ana = check_directions(f, x, dx, rng, directions=3)
        assert_gradients_close(num, ana, f"{name} {options} (directions)")
    if not jacobian:
        return
    # full Jacobian: one backward call per output entry gives the analytic rows
    rows_Z, rows_W, rows_V = [], [], []
    for k in range(out.size):
        e = np.zeros(out.size)
        e[k] = 1.0
        gZ, gW, gV = attention_backward(e.reshape(out.shape), cache)
        rows_Z.append(gZ), rows_W.append(gW), rows_V.append(gV)
    for name, x, rows, F in (("dZ", Z, rows_Z, lambda t: attention_forward(t, W, V, n_context, **options)[0]),
                             ("dW", W, rows_W, lambda t: attention_forward(Z, t, V, n_context, **options)[0]),
                             ("dV", V, rows_V, lambda t: attention_forward(Z, W, t, n_context, **options)[0])):
        J = numeric_jacobian(F, x).reshape((out.size,) + x.shape)
        assert_gradients_close(J, np.stack(rows), f"{name} {options} (full Jacobian)")


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@given(seed=SEEDS, B=st.integers(1, 2), d=st.integers(1, 2), n_context=st.integers(1, 3), extra=st.integers(0, 1))
def test_attention_backward_full_jacobian(options, seed, B, d, n_context, extra):
    Z, W, V, G, rng = _layer(seed, B, d, n_context, extra)
    _check_attention_gradients(Z, W, V, G, rng, n_context, options, jacobian=True)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@given(seed=SEEDS, B=st.integers(1, 3), d=st.integers(1, 4), n_context=st.integers(1, 6), extra=st.integers(0, 2),
       w_scale=st.sampled_from([0.0, 0.3, 1.0, 2.0]))
def test_attention_backward_directions(options, seed, B, d, n_context, extra, w_scale):
    Z, W, V, G, rng = _layer(seed, B, d, n_context, extra, w_scale)
    _check_attention_gradients(Z, W, V, G, rng, n_context, options, jacobian=False)


# --- the vectorised layer against the per-token reference and against a loop over the batch ----------


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@given(seed=SEEDS, B=st.integers(1, 3), d=st.integers(1, 4), n_context=st.integers(1, 6), extra=st.integers(0, 2))
def test_vectorised_equals_naive(options, seed, B, d, n_context, extra):
    Z, W, V, _, _ = _layer(seed, B, d, n_context, extra, 1.0)
    out, _ = attention_forward(Z, W, V, n_context, **options)
    np.testing.assert_allclose(out, attention_naive(Z, W, V, n_context, **options), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(attention_forward(Z[0], W, V, n_context, **options)[0],
                               attention_naive(Z[0], W, V, n_context, **options), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_batched_forward_and_backward_equal_loop_of_single_items(options):
    Z, W, V, G, _ = _layer(0, 5, 3, 6, 1)
    out, cache = attention_forward(Z, W, V, 6, **options)
    dZ, dW, dV = attention_backward(G, cache)
    sum_dW, sum_dV = np.zeros_like(W), np.zeros_like(V)
    for b in range(5):
        out_b, cache_b = attention_forward(Z[b], W, V, 6, **options)
        np.testing.assert_allclose(out[b], out_b, rtol=1e-13, atol=1e-14)
        dZ_b, dW_b, dV_b = attention_backward(G[b], cache_b)
        np.testing.assert_allclose(dZ[b], dZ_b, rtol=1e-12, atol=1e-13)
        sum_dW, sum_dV = sum_dW + dW_b, sum_dV + dV_b
    np.testing.assert_allclose(dW, sum_dW, rtol=1e-12, atol=1e-12)  # weight gradients sum over the batch
    np.testing.assert_allclose(dV, sum_dV, rtol=1e-12, atol=1e-12)
    # two leading batch dimensions behave like one
    out2, cache2 = attention_forward(Z.reshape(5, 1, 6, 8), W, V, 6, **options)
    np.testing.assert_allclose(out2.reshape(out.shape), out, rtol=1e-14, atol=1e-15)
    dZ2, dW2, dV2 = attention_backward(G.reshape(5, 1, 6, 8), cache2)
    np.testing.assert_allclose(dZ2.reshape(dZ.shape), dZ, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dW2, dW, rtol=1e-13, atol=1e-13)


def test_default_flags_are_the_documented_ones_in_every_layer():
    """No flags passed: attend_self=False, query_only=False in attention_forward, attention_naive and the cache."""
    Z, W, V, _, _ = _layer(6, 2, 2, 3, 1)  # an extra column, so every choice of the flags gives another output
    explicit, _ = attention_forward(Z, W, V, 3, attend_self=False, query_only=False)
    default, cache = attention_forward(Z, W, V, 3)
    np.testing.assert_array_equal(default, explicit)
    assert cache.n_keys == 3 and cache.query_only is False
    np.testing.assert_allclose(attention_naive(Z, W, V, 3), default, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(attention_naive(Z[0], W, V, 3), default[0], rtol=1e-12, atol=1e-12)
    for options in OPTIONS:  # a changed default would be one of the other three
        if options != dict(attend_self=False, query_only=False):
            assert np.max(np.abs(attention_forward(Z, W, V, 3, **options)[0] - default)) > 1e-3, options


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_backward_refuses_a_non_finite_or_misshaped_dout(bad):
    Z, W, V, G, _ = _layer(7, 2, 2, 3, 1)
    for options in OPTIONS:
        _, cache = attention_forward(Z, W, V, 3, **options)
        G_bad = G.copy()
        G_bad[1, 0, -1] = bad  # on the query column, which the backward reads
        with pytest.raises(ValueError, match=rf"^dout contains a non-finite value \({bad}\)"):
            attention_backward(G_bad, cache)
        with pytest.raises(ValueError, match=r"dout has shape \(1, 4, 5\), expected \(2, 4, 5\)"):
            attention_backward(G[:1], cache)  # another batch
        with pytest.raises(ValueError, match=r"dout has shape \(2, 4, 4\), expected \(2, 4, 5\)"):
            attention_backward(G[..., :4], cache)  # another number of tokens
        with pytest.raises(TypeError, match="cache must be the AttentionCache returned by attention_forward"):
            attention_backward(G, tuple(cache))


def test_query_only_updates_only_the_last_column():
    Z, W, V, _, _ = _layer(1, 3, 2, 4, 1)
    full, _ = attention_forward(Z, W, V, 4)
    out, _ = attention_forward(Z, W, V, 4, query_only=True)
    np.testing.assert_array_equal(out[..., :-1], Z[..., :-1])
    np.testing.assert_allclose(out[..., -1], full[..., -1], rtol=1e-14, atol=1e-15)
    assert not np.allclose(full[..., :-1], Z[..., :-1])  # the full layer does update the others


def test_equal_scores_attend_uniformly():
    Z, _, V, _, _ = _layer(2, 2, 2, 5, 0)
    for options in OPTIONS:
        out, cache = attention_forward(Z, np.zeros((4, 4)), V, 5, **options)  # W = 0: every score is 0
        n_keys = 6 if options["attend_self"] else 5
        np.testing.assert_array_equal(cache.A, 1.0 / n_keys)
        expect = Z[..., -1] + np.einsum("ij,bj->bi", V, Z[..., :n_keys].mean(axis=-1))
        np.testing.assert_allclose(out[..., -1], expect, rtol=1e-14, atol=1e-14)


def test_attention_is_pure():
    Z, W, V, G, _ = _layer(3, 2, 2, 3, 1)
    copies = [a.copy() for a in (Z, W, V, G)]
    for options in OPTIONS:
        _, cache = attention_forward(Z, W, V, 3, **options)
        attention_backward(G, cache)
        attention_naive(Z, W, V, 3, **options)
    for a, c in zip((Z, W, V, G), copies):
        np.testing.assert_array_equal(a, c)


# --- extremes and float32 -------------------------------------------------------------------------------


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_huge_scores_stay_finite(options):
    Z, W, V, G, _ = _layer(4, 2, 2, 5, 1)
    Z = 1e3 * Z  # scores of order 1e6..1e7
    out, cache = attention_forward(Z, 10 * W, V, 5, **options)
    assert np.max(np.abs(np.swapaxes(Z[..., :5], -1, -2) @ (10 * W) @ Z)) > 1e6
    assert np.all(np.isfinite(out))
    assert np.all(np.isfinite(cache.A)) and np.all(cache.A >= 0)
    np.testing.assert_allclose(cache.A.sum(axis=-2), 1.0, rtol=1e-14)
    assert all(np.all(np.isfinite(g)) for g in attention_backward(G, cache))
    np.testing.assert_allclose(out, attention_naive(Z, 10 * W, V, 5, **options), rtol=1e-12)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_float32_layer_stays_float32(options):
    Z, W, V, G, _ = _layer(5, 3, 2, 4, 1)
    Z32, W32, V32 = (a.astype(np.float32) for a in (Z, W, V))
    out32, cache32 = attention_forward(Z32, W32, V32, 4, **options)
    out64, cache64 = attention_forward(Z, W, V, 4, **options)
    assert out32.dtype == np.float32 and np.all(np.isfinite(out32))
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)
    dZ32, dW32, dV32 = attention_backward(G.astype(np.float32), cache32)
    assert dZ32.dtype == np.float32 and dW32.dtype == np.float32 and dV32.dtype == np.float32
    for g32, g64 in zip((dZ32, dW32, dV32), attention_backward(G, cache64)):
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3)


def test_softmax_of_a_vector_and_its_backward():
    s = np.array([0.0, np.log(3.0)])
    np.testing.assert_allclose(softmax(s), [0.25, 0.75], rtol=1e-15)
    np.testing.assert_allclose(softmax(s), softmax(s[:, None])[:, 0], rtol=1e-15)  # keys axis of a column
    dp = np.array([1.0, -1.0])
    np.testing.assert_allclose(softmax_backward(dp, softmax(s)), [0.375, -0.375], rtol=1e-15)
