"""Elementwise attention (chapter 10): one GD step per activation, finite differences, naive reference, training."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ngdformer as nf
from ngdformer import elementwise as el
from numerics import scaled_error

SEEDS = st.integers(0, 2**32 - 1)
ACTS = el.ACTIVATIONS


def _tasks(seed, B, n, d, scale):
    """Batched tasks and iterates w = scale * N(0, I)."""
    rng = np.random.default_rng(seed)
    X, y, _ = nf.sample_tasks(rng, B, n, d)
    return X, y, scale * rng.standard_normal((B, d)), rng


def _step_scale(w, X, y, eta, act):
    r"""The size of the numbers one step adds up: max|w| + (eta / n) sum_i |phi(-m_i)| |x_i|, per batch."""
    m = nf.margins(w, X, y)
    weights = np.abs(el.phi(-m, act)) * np.linalg.norm(X, axis=-1)
    return float(np.max(np.abs(w)) + eta * np.max(np.mean(weights, axis=-1)))


def _step_limits(X):
    """2 / lambda_max of each context's second-moment matrix: GD on the squared loss is stable below it."""
    return 2.0 / np.linalg.eigvalsh(np.swapaxes(X, -1, -2) @ X / X.shape[-2])[..., -1]


# --- the identity: one constructed layer is one GD step on the matching loss -----------------------------------------


def test_the_activation_loss_map():
    assert el.ACTIVATION_LOSS == {"linear": "squared", "relu": "squared_hinge", "sigmoid": "logistic", "exp": "exp"}
    assert set(el.ACTIVATION_LOSS.values()) <= set(nf.losses.LOSSES)
    s = np.linspace(-3, 3, 13)  # l'(m) = -phi(-m): each loss's gradient kernel at one example x = y = 1
    for act, loss in el.ACTIVATION_LOSS.items():
        _, grad = nf.losses.LOSSES[loss]
        lprime = np.array([grad(np.array([m]), np.array([[1.0]]), np.array([1.0]))[0] for m in s])
        np.testing.assert_allclose(lprime, -el.phi(-s, act), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("act", ACTS)
@given(seed=SEEDS, B=st.integers(1, 4), n=st.integers(1, 30), d=st.integers(1, 6),
       scale=st.sampled_from([0.0, 0.1, 1.0, 3.0, 10.0]), eta=st.sampled_from([0.01, 0.5, 2.0]))
def test_constructed_layer_is_one_gd_step(act, seed, B, n, d, scale, eta):
    X, y, w, _ = _tasks(seed, B, n, d, scale)
    out, _ = nf.elementwise_attention_forward(nf.embed(X, y, w), *nf.gd_weights(d, eta, n), n, act)
    step = nf.gd_step(w, X, y, eta, loss=el.ACTIVATION_LOSS[act])
    assert scaled_error(nf.read_weights(out), step, _step_scale(w, X, y, eta, act)) < 1e-12
    np.testing.assert_array_equal(out[..., :d, -1], 0.0)  # the top half of the query stays zero
    np.testing.assert_allclose(out[..., :-1], nf.embed(X, y)[..., :-1] + _context_update(X, y, eta, n, act),
                               rtol=1e-12, atol=1e-14)


def _context_update(X, y, eta, n, act):
    """What the constructed layer writes into the context columns: W* meets their zero bottom halves."""
    Z = nf.embed(X, y)
    update = np.zeros_like(Z[..., :-1])
    d = X.shape[-1]
    update[..., d:, :] = (eta / n) * el.phi(0.0, act) * np.sum(Z[..., :d, :-1], axis=-1, keepdims=True)
    return update


def test_gd_weights_are_the_softmax_construction_with_v_over_n():
    W, V = nf.gd_weights(3, 0.5, 20)
    Ws, Vs = nf.ngd_weights(3, 0.5)
    np.testing.assert_array_equal(W, Ws)
    np.testing.assert_allclose(V, Vs / 20, rtol=1e-15)
    assert nf.context_is_inert(W, V)


@pytest.mark.parametrize("act", ACTS)
def test_looped_layer_is_gd_where_gd_is_stable(act):
    """Many applications from w0 = 0 and from a random start: GD's trajectory, step by step."""
    for seed, (B, n, d, eta, depth) in enumerate([(8, 20, 5, 0.5, 300), (4, 40, 10, 0.2, 200), (3, 7, 2, 0.5, 150)]):
        X, y, w0, _ = _tasks(seed, B, n, d, 0.5)
        eta = min(eta, 0.9 * np.min(_step_limits(X)))  # stable for the squared loss too
        got = nf.elementwise_trajectory(nf.embed(X, y, w0), *nf.gd_weights(d, eta, n), n, depth, act)
        ref = nf.gd(w0, X, y, eta, depth, loss=el.ACTIVATION_LOSS[act])
        assert got.shape == (depth + 1, B, d)
        assert scaled_error(got, ref, np.max(np.abs(ref))) < 1e-11, act


@pytest.mark.parametrize("act", ACTS)
def test_trajectory_of_other_weights_is_the_full_layer_looped(act):
    """Weights whose context feeds back (not inert): the trajectory runs the full layer, every column a query."""
    rng = np.random.default_rng(3)
    Z = 0.5 * rng.standard_normal((3, 6, 5))  # small enough that four exp layers stay far from overflow
    W, V = 0.15 * rng.standard_normal((2, 6, 6))
    assert not nf.context_is_inert(W, V)
    got = nf.elementwise_trajectory(Z, W, V, 4, 4, act)
    expect, Zt = [Z[..., 3:, -1]], Z
    for _ in range(4):
        Zt, _ = nf.elementwise_attention_forward(Zt, W, V, 4, act)
        expect.append(Zt[..., 3:, -1])
    np.testing.assert_allclose(got, np.stack(expect), rtol=1e-12, atol=1e-13)
    # the inert query path equals the full layer looped, too
    Wc, Vc = nf.gd_weights(3, 0.1, 4)
    got = nf.elementwise_trajectory(Z, Wc, Vc, 4, 5, act)
    Zt = Z
    for t in range(5):
        Zt, _ = nf.elementwise_attention_forward(Zt, Wc, Vc, 4, act)
        np.testing.assert_allclose(got[t + 1], Zt[..., 3:, -1], rtol=1e-12, atol=1e-13)


def test_trajectory_depth_zero_and_leading_dimensions():
    X, y, w0, _ = _tasks(4, 6, 9, 3, 1.0)
    Z = nf.embed(X, y, w0)
    W, V = nf.gd_weights(3, 0.3, 9)
    np.testing.assert_array_equal(nf.elementwise_trajectory(Z, W, V, 9, 0, "relu"), w0[None])
    flat = nf.elementwise_trajectory(Z, W, V, 9, 7, "sigmoid")
    nested = nf.elementwise_trajectory(Z.reshape(2, 3, 6, 10), W, V, 9, 7, "sigmoid")
    np.testing.assert_allclose(nested.reshape(flat.shape), flat, rtol=1e-14, atol=1e-15)
    single = nf.elementwise_trajectory(Z[2], W, V, 9, 7, "sigmoid")
    np.testing.assert_allclose(single, flat[:, 2], rtol=1e-14, atol=1e-15)


def test_diverging_linear_loop_runs_on_silently():
    """Above 2 / lambda_max the linear layer blows up: inf or NaN from some depth on, and no warning."""
    X, y, _, _ = _tasks(5, 4, 20, 5, 0.0)
    eta = 3.0 * np.max(_step_limits(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = nf.elementwise_trajectory(nf.embed(X, y), *nf.gd_weights(5, eta, 20), 20, 2000, "linear")
    assert not np.all(np.isfinite(w[-1]))
    assert np.all(np.isfinite(w[:20]))


# --- the backward pass: finite differences, every input --------------------------------------------------------------


def _layer(seed, B, d, n_context, extra, w_scale, act=None):
    """Random tokens (B, 2d, n_context + 1 + extra), weights and an upstream gradient.

    For the exp layer W is scaled down until every score is at most 4 in absolute value: central
    differences carry a round-off of about eps |out| / h, and e^s makes |out| grow fast with the scores.
    """
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n_context + 1 + extra
    Z = rng.standard_normal((B, D, N))
    W = w_scale * rng.standard_normal((D, D)) / np.sqrt(D)
    V = rng.standard_normal((D, D)) / np.sqrt(D)
    G = rng.standard_normal((B, D, N))
    if act == "exp":
        s_max = np.max(np.abs(np.swapaxes(Z[..., :n_context], -1, -2) @ W @ Z), initial=0.0)
        W = W * min(1.0, 4.0 / max(s_max, 1e-300))
    return Z, W, V, G, rng


def _check_gradients(Z, W, V, G, rng, n_context, act, jacobian):
    out, cache = nf.elementwise_attention_forward(Z, W, V, n_context, act)
    dZ, dW, dV = nf.elementwise_attention_backward(G, cache)
    assert dZ.shape == Z.shape and dW.shape == W.shape and dV.shape == V.shape

    def forward(Z_, W_, V_):
        return nf.elementwise_attention_forward(Z_, W_, V_, n_context, act)[0]

    inputs = (("dZ", Z, dZ, lambda t: forward(t, W, V)), ("dW", W, dW, lambda t: forward(Z, t, V)),
              ("dV", V, dV, lambda t: forward(Z, W, t)))
    for name, x, dx, F in inputs:
        num, ana = nf.check_directions(lambda t: float(np.sum(G * F(t))), x, dx, rng, directions=3)
        nf.assert_gradients_close(num, ana, f"{name} {act} (directions)")
    if not jacobian:
        return
    rows = {"dZ": [], "dW": [], "dV": []}  # one backward call per output entry gives the analytic Jacobian
    for k in range(out.size):
        e = np.zeros(out.size)
        e[k] = 1.0
        for name, g in zip(rows, nf.elementwise_attention_backward(e.reshape(out.shape), cache)):
            rows[name].append(g)
    for name, x, _, F in inputs:
        J = nf.numeric_jacobian(F, x).reshape((out.size,) + x.shape)
        nf.assert_gradients_close(J, np.stack(rows[name]), f"{name} {act} (full Jacobian)")


@pytest.mark.parametrize("act", ACTS)
@given(seed=SEEDS, B=st.integers(1, 2), d=st.integers(1, 2), n_context=st.integers(1, 3), extra=st.integers(0, 1))
def test_backward_full_jacobian(act, seed, B, d, n_context, extra):
    Z, W, V, G, rng = _layer(seed, B, d, n_context, extra, 1.0, act)
    _check_gradients(Z, W, V, G, rng, n_context, act, jacobian=True)


@pytest.mark.parametrize("act", ACTS)
@given(seed=SEEDS, B=st.integers(1, 3), d=st.integers(1, 4), n_context=st.integers(1, 6), extra=st.integers(0, 2),
       w_scale=st.sampled_from([0.0, 0.3, 1.0, 2.0]))
def test_backward_directions(act, seed, B, d, n_context, extra, w_scale):
    Z, W, V, G, rng = _layer(seed, B, d, n_context, extra, w_scale, act)
    _check_gradients(Z, W, V, G, rng, n_context, act, jacobian=False)


@pytest.mark.parametrize("act", ACTS)
def test_phi_prime_is_the_derivative_of_phi(act):
    s = np.linspace(-30, 30, 601) + 0.013  # no grid point on the ReLU's kink at -1
    num = (el.phi(s + 1e-6, act) - el.phi(s - 1e-6, act)) / 2e-6
    nf.assert_gradients_close(num, el.phi_prime(s, act), f"phi' {act}")
    if act == "relu":
        assert el.phi_prime(np.array([-1.0]), act)[0] == 0.0  # the subgradient at the kink


def test_phi_tails_keep_relative_accuracy():
    """sigma(-40) is about 4e-18, not 0, and sigma'(s) = sigma(s) sigma(-s) keeps it too."""
    s = np.array([-700.0, -40.0, 0.0, 40.0, 700.0])
    exact = np.array([np.exp(-700.0), np.exp(-40.0) / (1 + np.exp(-40.0)), 0.5, 1 / (1 + np.exp(-40.0)), 1.0])
    np.testing.assert_allclose(el.phi(s, "sigmoid"), exact, rtol=1e-15)
    np.testing.assert_allclose(el.phi_prime(s, "sigmoid"), exact * exact[::-1], rtol=1e-14)


# --- the second route: a per-token loop; batching --------------------------------------------------------------------


@pytest.mark.parametrize("act", ACTS)
@given(seed=SEEDS, B=st.integers(1, 3), d=st.integers(1, 4), n_context=st.integers(1, 6), extra=st.integers(0, 2))
def test_vectorised_equals_naive(act, seed, B, d, n_context, extra):
    Z, W, V, _, _ = _layer(seed, B, d, n_context, extra, 1.0)
    out, _ = nf.elementwise_attention_forward(Z, W, V, n_context, act)
    np.testing.assert_allclose(out, nf.elementwise_attention_naive(Z, W, V, n_context, act), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nf.elementwise_attention_forward(Z[0], W, V, n_context, act)[0],
                               nf.elementwise_attention_naive(Z[0], W, V, n_context, act), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ACTS)
def test_batched_forward_and_backward_equal_loop_of_single_items(act):
    Z, W, V, G, _ = _layer(0, 5, 3, 6, 1, 1.0)
    out, cache = nf.elementwise_attention_forward(Z, W, V, 6, act)
    dZ, dW, dV = nf.elementwise_attention_backward(G, cache)
    sum_dW, sum_dV = np.zeros_like(W), np.zeros_like(V)
    for b in range(5):
        out_b, cache_b = nf.elementwise_attention_forward(Z[b], W, V, 6, act)
        np.testing.assert_allclose(out[b], out_b, rtol=1e-13, atol=1e-14)
        dZ_b, dW_b, dV_b = nf.elementwise_attention_backward(G[b], cache_b)
        np.testing.assert_allclose(dZ[b], dZ_b, rtol=1e-12, atol=1e-13)
        sum_dW, sum_dV = sum_dW + dW_b, sum_dV + dV_b
    np.testing.assert_allclose(dW, sum_dW, rtol=1e-12, atol=1e-12)  # shared weights: the gradients sum
    np.testing.assert_allclose(dV, sum_dV, rtol=1e-12, atol=1e-12)
    out2, cache2 = nf.elementwise_attention_forward(Z.reshape(5, 1, 6, 8), W, V, 6, act)
    np.testing.assert_allclose(out2.reshape(out.shape), out, rtol=1e-14, atol=1e-15)
    dZ2, dW2, _ = nf.elementwise_attention_backward(G.reshape(5, 1, 6, 8), cache2)
    np.testing.assert_allclose(dZ2.reshape(dZ.shape), dZ, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dW2, dW, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtypes", list(itertools.product((np.float32, np.float64, np.int64), repeat=3)))
def test_naive_has_the_forwards_dtype_for_mixed_inputs(dtypes):
    """NumPy's promotion: float32 only when Z, W and V all are; the naive reference follows the forward."""
    Z, W, V, _, _ = _layer(7, 2, 2, 3, 1, 1.0)
    Z, W, V = (a.astype(t) for a, t in zip((Z, W, V), dtypes))
    out, _ = nf.elementwise_attention_forward(Z, W, V, 3, "sigmoid")
    naive = nf.elementwise_attention_naive(Z, W, V, 3, "sigmoid")
    assert naive.dtype == out.dtype == (np.float32 if set(dtypes) == {np.float32} else np.float64)
    np.testing.assert_allclose(naive, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(0, 4, 3), (2, 0, 4, 3)])
def test_an_empty_batch_gives_an_empty_result_in_both_versions(shape):
    W, V = nf.gd_weights(2, 0.5, 2)
    for act in ACTS:
        out, _ = nf.elementwise_attention_forward(np.zeros(shape), W, V, 2, act)
        naive = nf.elementwise_attention_naive(np.zeros(shape), W, V, 2, act)
        assert naive.shape == out.shape == shape and naive.dtype == out.dtype == np.float64


def test_not_a_softmax_and_not_normalised():
    """Doubling every key doubles the scores; no normalisation over the keys, unlike the softmax layer."""
    Z, W, V, _, _ = _layer(1, 2, 2, 4, 0, 1.0)
    _, cache = nf.elementwise_attention_forward(Z, W, V, 4, "exp")
    np.testing.assert_allclose(cache.A, np.exp(cache.S), rtol=1e-14)
    assert not np.allclose(cache.A.sum(axis=-2), 1.0)
    _, cache = nf.elementwise_attention_forward(Z, np.zeros((4, 4)), V, 4, "sigmoid")  # every score 0
    np.testing.assert_array_equal(cache.A, 0.5)


def test_layer_is_pure():
    Z, W, V, G, _ = _layer(3, 2, 2, 3, 1, 1.0)
    copies = [a.copy() for a in (Z, W, V, G)]
    for act in ACTS:
        _, cache = nf.elementwise_attention_forward(Z, W, V, 3, act)
        nf.elementwise_attention_backward(G, cache)
        nf.elementwise_attention_naive(Z, W, V, 3, act)
        nf.elementwise_trajectory(Z, W, V, 3, 3, act)
    for a, c in zip((Z, W, V, G), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("act", ACTS)
def test_float32_stays_float32(act):
    Z, W, V, G, _ = _layer(5, 3, 2, 4, 1, 0.5)
    out32, cache32 = nf.elementwise_attention_forward(*(a.astype(np.float32) for a in (Z, W, V)), 4, act)
    out64, cache64 = nf.elementwise_attention_forward(Z, W, V, 4, act)
    assert out32.dtype == np.float32 and cache32.A.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)
    grads32 = nf.elementwise_attention_backward(G.astype(np.float32), cache32)
    for g32, g64 in zip(grads32, nf.elementwise_attention_backward(G, cache64)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3)


def test_exp_overflow_is_inf_with_numpys_warning_and_the_other_layers_stay_finite():
    Z, W, V, _, _ = _layer(6, 1, 2, 3, 0, 1.0)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"), np.errstate(invalid="ignore"):
        _, cache = nf.elementwise_attention_forward(100 * Z, W, V, 3, "exp")  # scores of order 1e4
    assert np.any(np.isinf(cache.A))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for act in ("linear", "relu", "sigmoid"):
            out, cache = nf.elementwise_attention_forward(100 * Z, W, V, 3, act)
            assert np.all(np.isfinite(out)) and np.max(np.abs(cache.S)) > 1e3
            assert all(np.all(np.isfinite(g)) for g in nf.elementwise_attention_backward(np.ones_like(out), cache))


# --- training on one-step GD targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ACTS)
def test_query_kernel_gradient_is_the_textbook_backward_of_the_query_column(act):
    rng = np.random.default_rng(7)
    Z, target = el.elementwise_batch(rng, 6, 5, 3, 0.5, act)
    W, V = 0.3 * rng.standard_normal((2, 6, 6))
    J, dW, dV = nf.elementwise_one_step_loss(W, V, Z, target, act)
    out, cache = nf.elementwise_attention_forward(Z, W, V, 5, act)
    r = out[..., -1] - target
    dout = np.zeros_like(out)
    dout[..., -1] = r / 6
    _, dW_ref, dV_ref = nf.elementwise_attention_backward(dout, cache)
    assert J == pytest.approx(0.5 * np.sum(r * r) / 6, rel=1e-13)
    np.testing.assert_allclose(dW, dW_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dV, dV_ref, rtol=1e-12, atol=1e-14)
    num, ana = nf.check_directions(lambda w: nf.elementwise_one_step_loss(w, V, Z, target, act)[0], W, dW, rng)
    nf.assert_gradients_close(num, ana, f"one-step dW {act}")


@pytest.mark.parametrize("act", ACTS)
def test_one_step_loss_is_zero_at_the_construction(act):
    Z, target = el.elementwise_batch(np.random.default_rng(8), 16, 12, 4, 0.5, act, sigma0=0.5)
    J, dW, dV = nf.elementwise_one_step_loss(*nf.gd_weights(4, 0.5, 12), Z, target, act)
    assert J < 1e-28 and np.abs(dW).max() < 1e-13 and np.abs(dV).max() < 1e-13


@pytest.mark.parametrize("act", ("linear", "relu", "sigmoid"))
@pytest.mark.parametrize("seed", range(3))
def test_default_recipe_reaches_the_construction(act, seed):
    # through the public entry point, with its defaults (which hand over to the elementwise recipe)
    W, V, hist = nf.train_one_step_layer(np.random.default_rng(seed), n=20, d=5, eta=0.5, activation=act, quiet=True)
    assert hist["dist"][-1] < 1e-6, (act, seed, hist["dist"][-1])
    Ws, Vs = nf.gd_weights(5, 0.5, 20)
    assert nf.distance_to_construction(W, 20 * V, 0.5) == pytest.approx(hist["dist"][-1], rel=0.5, abs=1e-6)
    assert nf.context_is_inert(W, V)  # from zero only the three excited blocks move
    for M, Ms in ((W, Ws), (V, Vs)):
        for r, c in itertools.product((0, 1), repeat=2):
            if (M is W and (r, c) != (0, 1)) or (M is V and c == 1):
                np.testing.assert_array_equal(M[r * 5:(r + 1) * 5, c * 5:(c + 1) * 5], 0.0)


def test_train_one_step_layer_hands_elementwise_layers_over():
    kwargs = dict(n=8, d=2, eta=0.5, iterations=30, batch=4, lr=0.02, quiet=True)
    W1, V1, h1 = nf.train_one_step_layer(np.random.default_rng(0), activation="sigmoid", **kwargs)
    W2, V2, h2 = nf.train_elementwise_layer(np.random.default_rng(0), activation="sigmoid", **kwargs)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(V1, V2)
    assert set(h1) == {"loss", "c1", "c2", "dist", "dist_excited", "seconds"}
    np.testing.assert_array_equal(h1["loss"], h2["loss"])


def test_training_is_deterministic_and_blocks_mode_is_the_same_from_zero():
    kwargs = dict(n=8, d=2, eta=0.5, activation="relu", iterations=40, quiet=True)
    runs = [nf.train_elementwise_layer(np.random.default_rng(1), **kwargs) for _ in range(2)]
    blocks = nf.train_elementwise_layer(np.random.default_rng(1), params="blocks", **kwargs)
    for W, V, _ in runs[1:] + [blocks]:
        np.testing.assert_allclose(W, runs[0][0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(V, runs[0][1], rtol=1e-12, atol=1e-15)


def test_exp_layer_trains_with_a_small_start_scale_only():
    """The recipe's w0 gives heavy-tailed exp targets; sigma0 = 0.2 tames them (chapter 10)."""
    kwargs = dict(n=20, d=5, eta=0.5, activation="exp", quiet=True)
    _, _, bad = nf.train_elementwise_layer(np.random.default_rng(0), **kwargs)
    _, _, good = nf.train_elementwise_layer(np.random.default_rng(0), sigma0=0.2, **kwargs)
    assert bad["dist"][-1] > 1e-2 and good["dist"][-1] < 1e-8


# --- bad input -------------------------------------------------------------------------------------------------------


def test_bad_activation_and_arguments():
    Z, W, V, G, _ = _layer(0, 1, 2, 3, 0, 1.0)
    for call in (lambda a: nf.elementwise_attention_forward(Z, W, V, 3, a),
                 lambda a: nf.elementwise_attention_naive(Z, W, V, 3, a),
                 lambda a: nf.elementwise_trajectory(Z, W, V, 3, 2, a),
                 lambda a: nf.train_elementwise_layer(np.random.default_rng(0), n=3, d=2, eta=0.5, activation=a),
                 lambda a: el.phi(np.zeros(2), a), lambda a: el.phi_prime(np.zeros(2), a)):
        with pytest.raises(ValueError, match=r"activation must be one of \['linear', 'relu', 'sigmoid', 'exp'\], "
                                             r"got 'tanh'"):
            call("tanh")
    with pytest.raises(TypeError, match="activation must be a string"):
        nf.elementwise_attention_forward(Z, W, V, 3, None)
    with pytest.raises(ValueError, match=r"n_context = 4 is out of range"):
        nf.elementwise_attention_forward(Z, W, V, 4, "relu")
    with pytest.raises(ValueError, match=r"W has shape \(2, 2\), expected \(4, 4\)"):
        nf.elementwise_attention_forward(Z, W[:2, :2], V, 3, "relu")
    with pytest.raises(ValueError, match=r"Z contains a non-finite value \(nan\)"):
        nf.elementwise_attention_forward(np.full_like(Z, np.nan), W, V, 3, "relu")
    _, cache = nf.elementwise_attention_forward(Z, W, V, 3, "relu")
    with pytest.raises(ValueError, match=r"dout has shape \(4, 4\), expected \(1, 4, 4\)"):
        nf.elementwise_attention_backward(G[0], cache)
    with pytest.raises(ValueError, match="n must be finite and > 0, got 0"):
        nf.gd_weights(2, 0.5, 0)
    with pytest.raises(ValueError, match="n must be an integer, got 2.0"):
        nf.gd_weights(2, 0.5, 2.0)
    with pytest.raises(ValueError, match="depth must be finite and >= 0, got -1"):
        nf.elementwise_trajectory(Z, W, V, 3, -1, "relu")
    with pytest.raises(ValueError, match="iterations must be finite and >= 0, got -5"):
        nf.train_elementwise_layer(np.random.default_rng(0), n=3, d=2, eta=0.5, activation="relu", iterations=-5)
    with pytest.raises(ValueError, match=r"target has shape \(1, 3\), expected \(1, 4\)"):
        nf.elementwise_one_step_loss(W, V, Z, np.zeros((1, 3)), "relu")
