"""Losses and their hand-derived gradients: finite differences, batching, extremes, float32, ties."""

import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ngdformer as nf

from ngdformer import (assert_gradients_close, check_directions, exp_log_loss, exp_loss, exp_loss_grad, gd, gd_step,
                       logistic_loss, logistic_loss_grad, margins, ngd_coefficients, ngd_step, numeric_jacobian,
                       sample_tasks, sigmoid, squared_hinge_loss, squared_hinge_loss_grad, squared_loss,
                       squared_loss_grad)
from ngdformer.losses import LOSSES

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
    "squared_loss": (squared_loss, squared_loss_grad),
    # the squared hinge is once differentiable: its second derivative jumps at m = 1, where central differences
    # are off by h |x|^2 / 4 (the test below keeps the largest margin, which _problem sets to `scale`, off 1)
    "squared_hinge_loss": (squared_hinge_loss, squared_hinge_loss_grad),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
@given(seed=SEEDS, B=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 4),
       scale=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, 5.0]))
def test_loss_gradient_matches_finite_differences(name, seed, B, n, d, scale):
    loss, grad = GRAD_CASES[name]
    w, X, y, rng = _problem(seed, B, n, d, 1.05 * scale if name == "squared_hinge_loss" else scale)
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


@pytest.mark.parametrize("z, error, words", [
    (np.array([np.nan]), ValueError, "non-finite"), (np.array([0.5, -np.inf]), ValueError, "non-finite"),
    (np.array(["0.5"]), TypeError, "real numeric"), (np.array([0.5 + 1j]), TypeError, "real numeric"),
    (np.array([0.5], object), TypeError, "real numeric"), ("0.5", TypeError, "real numeric")])
def test_sigmoid_refuses_what_is_not_a_finite_real_number_by_name(z, error, words):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refusal, not NumPy's RuntimeWarning or ufunc error
        with pytest.raises(error, match=rf"^z .*{words}"):
            sigmoid(z)


def test_sigmoid_takes_integers_and_bools_as_float64_and_keeps_float32():
    np.testing.assert_array_equal(sigmoid(np.array([True, False])), sigmoid(np.array([1.0, 0.0])))
    assert sigmoid(np.array([0, 2])).dtype == np.float64 and sigmoid(np.array([0, 2]))[0] == 0.5
    assert sigmoid(np.zeros(3, np.float32)).dtype == np.float32
    assert sigmoid(np.zeros((0, 2))).shape == (0, 2)


def test_the_logistic_gradient_kernel_keeps_overflowing_margins_silent():
    """Finite w and X whose margins overflow to +-inf: the kernel's unchecked sigmoid gives the limit, not an error."""
    X, y = np.array([[1e200], [-1e200]]), np.array([1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(logistic_loss_grad(np.array([1e200]), X, y), [5e199])  # -(0 - 1e200) / 2


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
           lambda w, X, y: ngd_coefficients(w, X, y, "exp"), lambda w, X, y: ngd_coefficients(w, X, y, "logistic"),
           squared_loss, squared_loss_grad, squared_hinge_loss, squared_hinge_loss_grad]


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


# --- the squared losses (chapter 10) -----------------------------------------------------------------------------


def test_squared_losses_by_hand_on_a_tiny_case():
    X = np.array([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    y = np.array([[1.0, -1.0, 1.0]])
    w = np.array([[2.0, 0.25]])  # margins 2, -0.5, 2.25
    r = 1.0 - np.array([2.0, -0.5, 2.25])
    M = y[0, :, None] * X[0]
    np.testing.assert_allclose(squared_loss(w, X, y), [np.mean(r ** 2) / 2], rtol=1e-15)
    np.testing.assert_allclose(squared_loss_grad(w, X, y), [-(r @ M) / 3], rtol=1e-15)
    h = np.maximum(r, 0.0)  # only the second example is inside the margin
    np.testing.assert_allclose(squared_hinge_loss(w, X, y), [h[1] ** 2 / 6], rtol=1e-15)
    np.testing.assert_allclose(squared_hinge_loss_grad(w, X, y), [-h[1] * M[1] / 3], rtol=1e-15)
    assert squared_hinge_loss(10 * w[:, ::-1] * [1, -1], X, y)[0] >= 0
    np.testing.assert_array_equal(squared_hinge_loss_grad(np.array([[3.0, -1.0]]), X, y), [[0.0, 0.0]])  # m >= 1


def test_every_loss_is_registered_with_its_gradient_kernel():
    """LOSSES and the solvers' kernels hold the same losses; gd_step and gd accept each one by name."""
    assert set(LOSSES) == {"exp", "logistic", "squared", "squared_hinge"} == set(nf.losses._GRAD_KERNELS)
    w, X, y, _ = _problem(0, 4, 7, 3, 2.0)
    for name, (loss, grad) in LOSSES.items():
        np.testing.assert_allclose(nf.losses._GRAD_KERNELS[name](w, X, y), grad(w, X, y), rtol=1e-15, atol=1e-300)
        np.testing.assert_allclose(gd_step(w, X, y, 0.3, loss=name), w - 0.3 * grad(w, X, y), rtol=1e-15)
        W = gd(w, X, y, 0.3, 3, loss=name)
        np.testing.assert_allclose(W[3], gd_step(gd_step(gd_step(w, X, y, 0.3, name), X, y, 0.3, name), X, y, 0.3,
                                                 name), rtol=1e-13)


@pytest.mark.parametrize("loss", ["squared", "squared_hinge"])
def test_ngd_coefficients_refuse_the_squared_losses(loss):
    w, X, y, _ = _problem(0, 2, 4, 3, 1.0)
    with pytest.raises(ValueError, match=rf"loss must be 'exp' or 'logistic', got '{loss}' \(its loss can vanish"):
        ngd_coefficients(w, X, y, loss)
    with pytest.raises(ValueError, match=rf"got '{loss}'"):
        ngd_step(w, X, y, 0.1, loss=loss)


# --- every loss and gradient at margins of +-1e4 and +-1e6, in float32 and float64 -------------------------------

EXTREMES = [1e4, -1e4, 1e6, -1e6]
DTYPES = [np.float32, np.float64]


def _equal_margins(M, dtype):
    """One task of three examples whose margins are all exactly M: x = e1, e2, (e1 + e2) / 2 with w = (M, M)."""
    X = np.array([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]], dtype=dtype)
    return np.array([[M, M]], dtype=dtype), X, np.ones((1, 3), dtype=dtype)


def _documented(M):
    """The value each function documents at three equal margins M, from the formulas (mean of y_i x_i = (1/2, 1/2))."""
    big = M < 0
    half = np.array([[0.5, 0.5]])
    e_minus_m = np.inf if M < -700 else np.exp(-M)  # e^{-M} in float64: 0 for M = 1e4, inf for M = -1e4
    soft = 1.0 / (1.0 + np.exp(-abs(M)))  # sigma(|M|)
    return {
        "margins": np.full((1, 3), M),
        "exp_loss": np.array([e_minus_m]),
        "exp_log_loss": np.array([-M]),
        "exp_loss_grad": -e_minus_m * half,
        "logistic_loss": np.array([-M if big else 0.0]),  # log(1 + e^{-M}): |M| or e^{-1e4} = 0
        "logistic_loss_grad": -(soft if big else 0.0) * half,  # sigma(-M) = 1 for M << 0, 0 for M >> 0
        "squared_loss": np.array([0.5 * (1.0 - M) ** 2]),
        "squared_loss_grad": -(1.0 - M) * half,
        "squared_hinge_loss": np.array([0.5 * max(1.0 - M, 0.0) ** 2]),
        "squared_hinge_loss_grad": -max(1.0 - M, 0.0) * half,
        "ngd_exp": np.full((1, 3), 1.0 / 3.0),  # tied margins: equal weights, summing to 1
        "ngd_logistic": np.full((1, 3), 1.0 / 3.0 if not big else 1.0 / (3.0 * -M)),  # log(1 + e^{-M}) = -M
    }


FUNCTIONS = {"margins": margins, "exp_loss": exp_loss, "exp_log_loss": exp_log_loss, "exp_loss_grad": exp_loss_grad,
             "logistic_loss": logistic_loss, "logistic_loss_grad": logistic_loss_grad, "squared_loss": squared_loss,
             "squared_loss_grad": squared_loss_grad, "squared_hinge_loss": squared_hinge_loss,
             "squared_hinge_loss_grad": squared_hinge_loss_grad,
             "ngd_exp": lambda *a: ngd_coefficients(*a, loss="exp"),
             "ngd_logistic": lambda *a: ngd_coefficients(*a, loss="logistic")}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("M", EXTREMES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_extreme_margins_give_the_documented_value_without_a_warning(name, M, dtype):
    """The true value rounded to the dtype (inf where it overflows), never NaN; RuntimeWarnings are errors here."""
    w, X, y = _equal_margins(M, dtype)
    got = FUNCTIONS[name](w, X, y)
    expect = _documented(M)[name]
    assert got.dtype == dtype, got.dtype
    assert not np.any(np.isnan(got)), got
    rtol = (16 if name.startswith("ngd") else 4) * np.finfo(dtype).eps  # ngd: exp(-log|m|) carries eps log|m|
    finite = np.isfinite(expect)
    np.testing.assert_array_equal(np.isinf(got), ~finite)
    np.testing.assert_array_equal(np.sign(got[~finite]), np.sign(expect[~finite]))
    np.testing.assert_allclose(got[finite], expect[finite].astype(dtype), rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("M", [1e4, 1e6])
def test_exp_loss_grad_overflow_is_inf_per_entry_never_nan(M, dtype):
    """Overflowing terms meet zeros and opposite signs: inf * 0 and inf - inf must not become NaN.

    Entry by entry the true value: -inf where an overflowing term reaches it, the finite sum where none
    does, and an exact 0 where two equal overflowing terms cancel.
    """
    X = np.array([[[1.0, 0.0], [0.0, 1.0]],      # margins -M, 1: entry 0 overflows, entry 1 is -e^{-1}/2
                  [[1.0, 1.0], [-1.0, 1.0]],     # margins -M, -M: entry 0 cancels exactly, entry 1 is -inf
                  [[1.0, 0.0], [-1.0, 0.0]]],    # margins -M, +M: -inf, 0
                 dtype=dtype)
    w = np.array([[-M, 1.0], [0.0, -M], [-M, 0.0]], dtype=dtype)
    y = np.ones((3, 2), dtype=dtype)
    g = exp_loss_grad(w, X, y)
    assert g.dtype == dtype
    assert g[0, 0] == -np.inf and g[0, 1] == pytest.approx(-np.exp(-1.0) / 2, rel=4 * float(np.finfo(dtype).eps))
    assert g[1, 0] == 0.0 and g[1, 1] == -np.inf
    assert g[2, 0] == -np.inf and g[2, 1] == 0.0
    np.testing.assert_array_equal(nf.losses._GRAD_KERNELS["exp"](w, X, y), g)  # the kernel gd runs on
    expect = np.array([np.inf, w[0, 1] - dtype(0.5) * g[0, 1]], dtype=dtype)  # in the dtype on every NumPy
    np.testing.assert_array_equal(gd_step(w, X, y, 0.5, loss="exp")[0], expect)


def test_exp_loss_grad_is_unchanged_where_nothing_overflows():
    """The overflow path is only taken where needed; below it the plain formula is exact to round-off."""
    w, X, y, _ = _problem(1, 5, 8, 3, 700.0)  # |m| <= 700: e^{700} = 1e304 still fits
    m = np.einsum("bnd,bd->bn", X, w) * y
    expect = -np.einsum("bn,bnd->bd", np.exp(-m) * y, X) / 8
    np.testing.assert_allclose(exp_loss_grad(w, X, y), expect, rtol=1e-13)
    np.testing.assert_allclose(nf.losses._exp_loss_grad_overflow(m, X, y), expect, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_ngd_coefficients_keep_full_precision_at_huge_mixed_margins(dtype):
    """The weights are exact to the dtype at margins of 1e6: subtracting a log-sum-exp would lose eps |m|."""
    X = np.array([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]], dtype=dtype)
    y = np.ones((1, 3), dtype=dtype)
    w = np.array([[1e6, 1e6 + 2.0]], dtype=dtype)  # margins 1e6, 1e6 + 2, 1e6 + 1 (exact in both dtypes)
    e = np.exp(-np.array([0.0, 2.0, 1.0]))
    expect = e / e.sum()  # the logistic weights equal the exp ones there (tail)
    for loss in ("exp", "logistic"):
        c = ngd_coefficients(w, X, y, loss)
        assert c.dtype == dtype
        np.testing.assert_allclose(c[0], expect, rtol=8 * np.finfo(dtype).eps)
        total = 1.0 if loss == "exp" else 3.0 / (3e6 + 3.0)  # sum_i sigma(-m_i) / sum_j log(1 + e^{-m_j}), m << 0
        np.testing.assert_allclose(ngd_coefficients(-w, X, y, loss).sum(), total, rtol=8 * np.finfo(dtype).eps)
