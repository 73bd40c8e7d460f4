"""The constructed layer is one NGD step, exactly; stacked and looped layers are NGD; the self-attending variant."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import (assert_gradients_close, attention_forward, check_directions, context_is_inert, embed,
                       looped_forward, ngd, ngd_step, ngd_weights, read_weights, rel_error, sample_tasks,
                       stack_forward)

SEEDS = st.integers(0, 2**32 - 1)
SCALES = [0.0, 1e-3, 0.1, 1.0, 10.0, 1e3]  # |w| from 0 to 1e3


def _context(seed, B, n, d, scale):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d)
    w = rng.standard_normal((B, d))
    w = scale * w / np.linalg.norm(w, axis=-1, keepdims=True)  # |w| = scale exactly (w = 0 for scale 0)
    return X, y, w, rng


def test_ngd_weights_blocks():
    W, V = ngd_weights(3, 0.25)
    assert W.shape == V.shape == (6, 6)
    np.testing.assert_array_equal(W[:3, 3:], -np.eye(3))
    np.testing.assert_array_equal(V[3:, :3], 0.25 * np.eye(3))
    assert np.count_nonzero(W) == 3 and np.count_nonzero(V) == 3


@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 8), d=st.integers(1, 4),
       eta=st.floats(1e-3, 10.0), scale=st.sampled_from(SCALES), query_only=st.booleans())
def test_one_constructed_layer_is_one_ngd_step(seed, B, n, d, eta, scale, query_only):
    X, y, w, _ = _context(seed, B, n, d, scale)
    Z = embed(X, y, w)
    out, cache = attention_forward(Z, *ngd_weights(d, eta), n, query_only=query_only)
    assert rel_error(read_weights(out), ngd_step(w, X, y, eta)) <= 1e-12
    # the query column's attention weights are p(w) = softmax(-m(w))
    m = y * np.einsum("bnd,bd->bn", X, w)
    p = np.exp(-(m - m.min(axis=-1, keepdims=True)))
    np.testing.assert_allclose(cache.A[..., -1], p / p.sum(axis=-1, keepdims=True), rtol=1e-9, atol=1e-300)
    # top halves of every column are untouched, bit for bit; the query's top half stays 0
    np.testing.assert_array_equal(out[:, :d], Z[:, :d])


def test_context_columns_change_only_in_their_bottom_halves():
    X, y, w, _ = _context(0, 4, 6, 3, 1.0)
    Z = embed(X, y, w)
    W, V = ngd_weights(3, 0.5)
    out = looped_forward(Z, W, V, 6, 5)
    np.testing.assert_array_equal(out[:, :3, :], Z[:, :3, :])  # y_i x_i kept exactly through 5 layers
    assert np.all(np.abs(out[:, 3:, :6] - Z[:, 3:, :6]).max(axis=(-1, -2)) > 1e-3)  # bottoms do change
    assert context_is_inert(W, V)
    # ... which is why the query-only loop gives the same query column
    assert rel_error(read_weights(looped_forward(Z, W, V, 6, 5, query_only=True)), read_weights(out)) <= 1e-12


def test_context_is_inert_detects_every_reading_block():
    W, V = ngd_weights(2, 0.3)
    assert context_is_inert(W, V)
    for M, i, j in ((0, 2, 0), (0, 3, 3), (1, 0, 0), (1, 1, 3), (1, 2, 2)):  # W21, W22, V11, V12, V22
        Wb, Vb = W.copy(), V.copy()
        (Wb, Vb)[M][i, j] = 1e-3
        assert not context_is_inert(Wb, Vb)
    Wb = W.copy()
    Wb[0, 1] = 5.0  # W11 reads only the (unchanging) top halves
    assert context_is_inert(Wb, V)


@pytest.mark.parametrize("query_only", [False, True])
def test_200_loops_equal_200_ngd_steps(query_only):
    """n = 40, d = 10, B = 64, eta = 0.1: one layer looped 200 times is 200 NGD steps."""
    X, y, w0, _ = _context(1, 64, 40, 10, 0.0)
    W, V = ngd_weights(10, 0.1)
    Z = embed(X, y, w0)
    T = ngd(w0, X, y, 0.1, 200)
    for chunk in range(4):  # compare every 50 loops
        Z = looped_forward(Z, W, V, 40, 50, query_only=query_only)
        assert rel_error(read_weights(Z), T[50 * (chunk + 1)]) <= 1e-12
    np.testing.assert_array_equal(Z[:, :10], embed(X, y, w0)[:, :10])


@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 8), d=st.integers(1, 4), L=st.integers(1, 6),
       scale=st.sampled_from(SCALES))
def test_stacked_layers_with_different_etas_are_ngd_with_per_step_etas(seed, B, n, d, L, scale):
    X, y, w0, rng = _context(seed, B, n, d, scale)
    etas = rng.uniform(0.01, 2.0, size=L)
    layers = [ngd_weights(d, float(e)) for e in etas]
    out, caches = stack_forward(embed(X, y, w0), layers, n)
    assert len(caches) == L
    assert rel_error(read_weights(out), ngd(w0, X, y, etas, L)[-1]) <= 1e-12
    out_q, _ = stack_forward(embed(X, y, w0), layers, n, query_only=True)
    assert rel_error(read_weights(out_q), read_weights(out)) <= 1e-12


def test_float32_construction():
    X, y, w, _ = _context(2, 5, 7, 3, 1.0)
    Z32 = embed(X, y, w).astype(np.float32)
    W, V = (M.astype(np.float32) for M in ngd_weights(3, 0.5))
    out, _ = attention_forward(Z32, W, V, 7)
    assert out.dtype == np.float32
    np.testing.assert_allclose(read_weights(out), ngd_step(w, X, y, 0.5), rtol=1e-5, atol=1e-6)


# --- the self-attending variant: GD on log(1 + sum_j exp(-m_j)) ----------------------------------


def _sink_loss(w, X, y):
    """log(1 + sum_j e^{-m_j}), the loss of the layer whose query also attends to itself."""
    m = y * np.einsum("...nd,...d->...n", X, w)
    return np.logaddexp.reduce(np.concatenate([np.zeros(m.shape[:-1] + (1,)), -m], axis=-1), axis=-1)


def _sink_grad(w, X, y):
    r"""Its gradient: -sum_i q_i y_i x_i with q_i = e^{-m_i} / (1 + sum_j e^{-m_j}), in the log domain."""
    m = y * np.einsum("...nd,...d->...n", X, w)
    q = np.exp(-m - _sink_loss(w, X, y)[..., None])
    return -np.einsum("...n,...nd->...d", q * y, X)


@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 4),
       eta=st.floats(1e-3, 5.0), scale=st.sampled_from(SCALES))
def test_self_attending_layer_is_gd_on_the_sink_loss(seed, B, n, d, eta, scale):
    X, y, w, rng = _context(seed, B, n, d, scale)
    if scale <= 1.0:  # the test's own gradient is right (finite differences)
        num, ana = check_directions(lambda v: float(np.sum(_sink_loss(v, X, y))), w, _sink_grad(w, X, y), rng)
        assert_gradients_close(num, ana, "sink loss")
    W, V = ngd_weights(d, eta)
    out, cache = attention_forward(embed(X, y, w), W, V, n, attend_self=True)
    assert rel_error(read_weights(out), w - eta * _sink_grad(w, X, y)) <= 1e-12
    np.testing.assert_allclose(cache.A[..., :, -1].sum(axis=-1), 1.0, rtol=1e-12)  # n + 1 keys, itself included
    # the query's own score is 0, so its weight is 1 / (1 + sum_j e^{-m_j})
    np.testing.assert_allclose(cache.A[..., -1, -1], np.exp(-_sink_loss(w, X, y)), rtol=1e-9, atol=1e-300)


def test_looped_self_attending_layer_is_gd_and_differs_from_ngd():
    X, y, w, _ = _context(3, 4, 10, 3, 0.0)
    W, V = ngd_weights(3, 0.5)
    Z = embed(X, y, w)
    for _ in range(20):
        Z, _ = attention_forward(Z, W, V, 10, attend_self=True)
        w = w - 0.5 * _sink_grad(w, X, y)
    assert rel_error(read_weights(Z), w) <= 1e-12
    assert rel_error(read_weights(Z), ngd(np.zeros((4, 3)), X, y, 0.5, 20)[-1]) > 1e-3  # the mask matters
