"""Losses and their hand-derived gradients: finite differences, batching, extremes, float32, ties."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import (assert_gradients_close, check_directions, exp_log_loss, exp_loss, exp_loss_grad,
                       logistic_loss, logistic_loss_grad, margins, ngd_coefficients, numeric_jacobian, sample_tasks,
                       sigmoid)

SEEDS = st.integers(0, 2**32 - 1)


def _problem(seed, B, n, d, scale):
    """A batch of contexts and weights whose largest |margin| per task is ``scale`` or less (w = 0 when scale = 0).

    Bounding the margins (not |w|) bounds exp_loss by e^scale: central differences carry a
    round-off of about eps * |f| / h, so |f| must stay moderate for the 1e-6 + 1e-5 |ana| tolerance.
    """
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d)
    w = rng.standard_normal((B, d))
    m_max = np.max(np.abs(np.einsum("bnd,bd->bn", X, w)), axis=-1, keepdims=True)  # (B, 1)
    norm = np.linalg.norm(w, axis=-1, keepdims=True)
    # |w| <= 10 scale as well: a w nearly orthogonal to every x_i would otherwise be scaled up to a
    # huge vector whose margins carry round-off eps |w| |x| (largest error measured: 0.86 of the tolerance).
    w = scale * w / np.maximum(m_max, norm / 10)
    return w, X, y, rng


def _check_scalar_gradient(f_batched, grad, w, rng, what):
    """Directions on sum_b f_b(w_b), plus the full (B, B, d) Jacobian of the per-task values."""
    num, ana = check_directions(lambda v: float(np.sum(f_batched(v))), w, grad, rng, directions=3)
    assert_gradients_close(num, ana, what + " (directions)")
    J = numeric_jacobian(f_batched, w)  # (B, B, d): task b depends only on w_b
    B = w.shape[0]
    expect = np.zeros_like(J)
    expect[np.arange(B), np.arange(B)] = grad
    assert_gradients_close(J, expect, what + " (full Jacobian)")


GRAD_CASES = {
    "exp_loss": (exp_loss, exp_loss_grad),
    "logistic_loss": (logistic_loss, logistic_loss_grad),
    # GD on log L_exp is NGD on L_exp: its gradient is -sum_i p_i y_i x_i with p = softmax(-m)
    "exp_log_loss": (exp_log_loss,
                     lambda w, X, y: -np.einsum("bn,bnd->bd", ngd_coefficients(w, X, y, "exp") * y, X)),
    # log of the logistic loss: its gradient is -sum_i c_i y_i x_i with the logistic NGD weights
    "log_logistic_loss": (lambda w, X, y: np.log(logistic_loss(w, X, y)),
                          lambda w, X, y: -np.einsum("bn,bnd->bd", ngd_coefficients(w, X, y, "logistic") * y, X)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 4),
       scale=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, 5.0]))
def test_loss_gradient_matches_finite_differences(name, seed, B, n, d, scale):
    loss, grad = GRAD_CASES[name]
    w, X, y, rng = _problem(seed, B, n, d, scale)
    _check_scalar_gradient(lambda v: loss(v, X, y), grad(w, X, y), w, rng, name)


@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 4),
       scale=st.sampled_from([0.0, 0.5, 2.0, 20.0, 60.0]))
def test_normalized_gradient_is_softmax_weighted_sum(seed, B, n, d, scale):
    """-grad L / L equals sum_i c_i y_i x_i for both losses; the exp weights are softmax(-m)."""
    w, X, y, _ = _problem(seed, B, n, d, scale)
    for loss, L, dL in (("exp", exp_loss, exp_loss_grad), ("logistic", logistic_loss, logistic_loss_grad)):
        c = ngd_coefficients(w, X, y, loss)
        direction = np.einsum("bn,bnd->bd", c * y, X)
        np.testing.assert_allclose(direction, -dL(w, X, y) / L(w, X, y)[:, None], rtol=1e-10, atol=1e-12)
    m = y * np.einsum("bnd,bd->bn", X, w)
    p = np.exp(-m - np.max(-m, axis=-1, keepdims=True))
    np.testing.assert_allclose(ngd_coefficients(w, X, y, "exp"), p / p.sum(-1, keepdims=True), rtol=1e-12)


@given(s=st.floats(-30, 30))
def test_sigmoid_matches_definition(s):
    assert sigmoid(s) == pytest.approx(1.0 / (1.0 + np.exp(-s)), rel=1e-12, abs=1e-300)


def test_losses_by_hand_on_a_tiny_case():
    X = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    y = np.array([[1.0, -1.0]])
    w = np.array([[1.0, 1.0]])
    m = np.array([1.0, -2.0])
    np.testing.assert_allclose(margins(w, X, y), [m])
    np.testing.assert_allclose(exp_loss(w, X, y), [np.mean(np.exp(-m))], rtol=1e-14)
    np.testing.assert_allclose(logistic_loss(w, X, y), [np.mean(np.log1p(np.exp(-m)))], rtol=1e-14)
    np.testing.assert_allclose(exp_log_loss(w, X, y), [np.log(np.mean(np.exp(-m)))], rtol=1e-14)
    np.testing.assert_allclose(exp_loss_grad(w, X, y), [-(np.exp(-1.0) * np.array([1, 0]) +
                                                          np.exp(2.0) * np.array([0, -2])) / 2], rtol=1e-14)


BATCHED = [margins, exp_loss, exp_log_loss, exp_loss_grad, logistic_loss, logistic_loss_grad,
           lambda w, X, y: ngd_coefficients(w, X, y, "exp"), lambda w, X, y: ngd_coefficients(w, X, y, "logistic")]


@pytest.mark.parametrize("k", range(len(BATCHED)))
def test_batched_equals_loop_of_single_items(k):
    f = BATCHED[k]
    w, X, y, _ = _problem(7, 5, 6, 3, 1.5)
    loop = np.stack([f(w[b], X[b], y[b]) for b in range(5)])
    np.testing.assert_allclose(f(w, X, y), loop, rtol=1e-13, atol=1e-15)
    # extra leading dimensions broadcast: a (T, B, d) trajectory against one batch of contexts
    wT = np.stack([w, 2 * w])
    np.testing.assert_allclose(f(wT, X, y)[1], f(2 * w, X, y), rtol=1e-13, atol=1e-15)


# --- extremes: finite, no warnings (RuntimeWarning is an error under pytest) ---------------------------


def _extreme_problem(sign):
    """Margins of order +-1e4: three tasks with one sign throughout, then one mixed task (2e4, 5e3, -1e4)."""
    X = np.array([[[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]] * 4)
    y = np.ones((4, 3))
    w = sign * np.array([[1e4, 1e4], [1e4, 2e4], [3e4, 1e4], [2e4, -1e4]])
    return w, X, y


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_extreme_margins_stay_finite(sign):
    w, X, y = _extreme_problem(sign)
    assert np.all(np.abs(margins(w, X, y)) >= 5e3)
    for f in (logistic_loss, logistic_loss_grad, exp_log_loss,
              lambda *a: ngd_coefficients(*a, loss="exp"), lambda *a: ngd_coefficients(*a, loss="logistic")):
        assert np.all(np.isfinite(f(w, X, y)))
    for loss in ("exp", "logistic"):
        c = ngd_coefficients(w, X, y, loss)
        assert np.all(c >= 0)
        if loss == "exp":
            np.testing.assert_allclose(c.sum(-1), 1.0, rtol=1e-11)  # log-domain round-off ~ eps |m|
    if sign > 0:  # all margins +1e4: the loss underflows to 0 but log L stays exact
        assert np.all(logistic_loss(w, X, y) >= 0)
        np.testing.assert_allclose(exp_log_loss(w, X, y)[:2], [-1e4, -1e4 - np.log(3)], rtol=1e-14)


def test_extreme_margins_weights_agree_in_the_tail():
    """At margins >> 1 the logistic NGD weights equal the exp (softmax) weights."""
    w, X, y = (a[:3] for a in _extreme_problem(1.0))  # every margin >= 1e4
    np.testing.assert_allclose(ngd_coefficients(w, X, y, "logistic"), ngd_coefficients(w, X, y, "exp"),
                               rtol=1e-12, atol=1e-300)
    w = np.array([[40.0, 35.0]])  # margins 40, 37.5, 35: logistic terms underflow-prone region (m > 30)
    np.testing.assert_allclose(ngd_coefficients(w, X[:1], y[:1], "logistic"),
                               ngd_coefficients(w, X[:1], y[:1], "exp"), rtol=1e-12)


def test_exp_loss_overflows_to_inf_silently_as_documented():
    """Where e^{-m} exceeds float64 (m < -709.8), exp_loss returns inf without a warning (losses.py docstring).

    exp_log_loss and the normalized gradient stay finite there.
    """
    w, X, y = _extreme_problem(-1.0)
    assert np.all(np.isinf(exp_loss(w, X, y)))  # every task has a margin <= -1e4
    assert np.all(np.isfinite(exp_log_loss(w, X, y)))
    assert np.all(np.isfinite(ngd_coefficients(w, X, y, "exp")))
    assert np.all(np.isfinite(exp_loss(w / 100, X, y)))  # |m| <= 300: still representable


def test_float32_inputs_keep_float32():
    w, X, y, _ = _problem(3, 4, 5, 3, 1.0)
    w32, X32, y32 = w.astype(np.float32), X.astype(np.float32), y.astype(np.float32)
    for f in BATCHED:
        r32, r64 = f(w32, X32, y32), f(w, X, y)
        assert r32.dtype == np.float32
        assert np.all(np.isfinite(r32))
        np.testing.assert_allclose(r32, r64, rtol=2e-5, atol=1e-5)
    # extremes in float32 too
    wx, Xx, yx = (a.astype(np.float32) for a in _extreme_problem(1.0))
    for loss in ("exp", "logistic"):
        c = ngd_coefficients(wx, Xx, yx, loss)
        assert c.dtype == np.float32 and np.all(np.isfinite(c))
    assert np.all(np.isfinite(logistic_loss_grad(-wx, Xx, yx)))


def test_ties_identical_points_share_weight():
    X = np.array([[[1.0, 2.0], [1.0, 2.0], [-3.0, 0.5]]])
    y = np.array([[1.0, 1.0, -1.0]])
    w = np.array([[0.3, -0.2]])
    for loss in ("exp", "logistic"):
        c = ngd_coefficients(w, X, y, loss)
        assert c[0, 0] == c[0, 1]
    c = ngd_coefficients(np.zeros((1, 2)), X, y, "exp")  # w = 0: every margin ties at 0, uniform weights
    np.testing.assert_allclose(c, 1 / 3, rtol=1e-15)
