"""The test tools themselves: each checker and metric on inputs where it must fail, and on extremes.

A checker that passes NaN, compares arrays of different shapes by broadcasting, or takes its
scale from one argument only lets a broken gradient through every test that relies on it.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import (accuracy, assert_gradients_close, check_directions, cosine, directional_derivative,
                       gradient_errors, moving_average, normalized_difference, numeric_jacobian, rel_error,
                       relative_difference)

NON_FINITE = [np.nan, np.inf, -np.inf]


def _quiet(call):
    """Run ``call`` with every warning an error: the valid extremes must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


# --- rel_error ---------------------------------------------------------------------------------------


entries = st.one_of(st.just(0.0), st.floats(-1e3, 1e3), st.sampled_from(NON_FINITE))


@given(st.lists(entries, min_size=1, max_size=6), st.lists(entries, min_size=1, max_size=6))
def test_rel_error_is_symmetric_and_never_nan(a, b):
    a, b = np.array(a), np.resize(np.array(b), len(a))
    e1, e2 = rel_error(a, b), rel_error(b, a)
    assert e1 == e2 and not math.isnan(e1)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        assert e1 == math.inf  # a NaN or inf anywhere: never a pass, whichever argument holds it


def test_rel_error_scale_comes_from_both_arguments():
    # a scale taken from b alone gives 0.2 / 2 for the first; from a alone, 0.2 / 2 for the second
    assert rel_error([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.2 / 2.2, rel=1e-14)
    assert rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2, rel=1e-14)
    assert rel_error([3.0, -1.0], 0.0) == 1.0 and rel_error(0.0, [3.0, -1.0]) == 1.0  # zero against nonzero
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0 and rel_error(0.0, 0.0) == 0.0  # zero against zero


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("where", ["a", "b"])
def test_rel_error_of_non_finite_input_is_inf(bad, where):
    x, ref = np.array([bad, 1.0]), np.array([1.0, 1.0])
    err = rel_error(x, ref) if where == "a" else rel_error(ref, x)
    assert err == math.inf
    assert not err <= 1e300 and err > 1e-8  # both ways of writing the test flag it
    assert rel_error([np.inf], [np.inf]) == math.inf  # equal infinities are an overflow, not agreement


def test_rel_error_shapes_and_types():
    with pytest.raises(ValueError, match=r"a has shape \(3,\) and b has shape \(4,\): they do not broadcast"):
        rel_error(np.ones(3), np.ones(4))
    assert rel_error(np.ones((2, 3)), 1.0) == 0.0  # a scalar broadcasts
    with pytest.raises(TypeError, match="b must be real numeric"):
        rel_error([1.0], ["x"])


def test_rel_error_extremes_stay_finite():
    assert _quiet(lambda: rel_error([1e308, 0.0], [-1e308, 0.0])) == 2.0  # a - b overflows, the ratio does not
    assert _quiet(lambda: rel_error([1e-320], [0.0])) == 1.0  # a subnormal scale
    assert _quiet(lambda: rel_error(np.float32([3e38, 1.0]), np.float32([3e38, 1.0]))) == 0.0


# --- gradient_errors and assert_gradients_close ------------------------------------------------------------


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("where", ["num", "ana"])
def test_assert_gradients_close_fails_on_non_finite(bad, where):
    good = np.array([0.5, -2.0])
    x = good.copy()
    x[1] = bad
    num, ana = (x, good) if where == "num" else (good, x)
    assert gradient_errors(num, ana)[1] == math.inf and gradient_errors(num, ana)[0] == 0.0
    with pytest.raises(AssertionError, match=r"loss: numeric .* vs analytic .* \(not finite\)"):
        assert_gradients_close(num, ana, "loss")
    with pytest.raises(AssertionError):
        assert_gradients_close(np.array([bad]), np.array([bad]))  # both sides equally non-finite


def test_assert_gradients_close_at_the_tolerance():
    for ana in (0.0, 1.0, -250.0):
        tol = 1e-6 + 1e-5 * abs(ana)
        assert_gradients_close(np.array([ana + 0.99 * tol]), np.array([ana]))  # a match just below
        with pytest.raises(AssertionError, match="numeric"):
            assert_gradients_close(np.array([ana + 1.01 * tol]), np.array([ana]))  # a mismatch just above
        with pytest.raises(AssertionError):
            assert_gradients_close(np.array([ana - 1.01 * tol, ana]), np.array([ana, ana]))


def test_assert_gradients_close_refuses_shapes_and_empty_input():
    with pytest.raises(ValueError, match=r"dW: num has shape \(3,\) but ana has shape \(1,\)"):
        assert_gradients_close(np.ones(3), np.ones(1), "dW")  # broadcasting would compare one number three times
    with pytest.raises(ValueError, match=r"num has shape \(2, 3\) but ana has shape \(3, 2\)"):
        assert_gradients_close(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="nothing to check"):
        assert_gradients_close(np.zeros(0), np.zeros(0))  # a check of nothing cannot fail
    with pytest.raises(TypeError, match="what must be a string"):
        assert_gradients_close(np.ones(2), np.ones(2), what=3)
    with pytest.raises(ValueError, match=r"num has shape \(2,\) and ana has shape \(3,\): they do not broadcast"):
        gradient_errors(np.ones(2), np.ones(3))


# --- numeric_jacobian, check_directions, directional_derivative --------------------------------------------


def _tanh_quadratic(seed, d, k):
    """F(x) = tanh(x[:k]) + (1/2 x^T A x) b: Jacobian diag(1 - tanh^2) + b (A x)^T, with A symmetric."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    A = (A + A.T) / 2
    b = rng.standard_normal(k)
    x = rng.standard_normal(d)
    F = lambda z: np.tanh(z[:k]) + 0.5 * (z @ A @ z) * b  # noqa: E731
    J = np.outer(b, A @ x)
    J[np.arange(k), np.arange(k)] += 1.0 - np.tanh(x[:k]) ** 2
    return F, x, J


@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 5))
def test_numeric_jacobian_of_a_nonlinear_map(seed, d, k):
    k = min(k, d)
    F, x, J = _tanh_quadratic(seed, d, k)
    num = numeric_jacobian(F, x)
    assert num.shape == (k, d)
    # central differences: truncation h^2 |F'''| / 6 ~ 1e-12, round-off eps |F| / h ~ 1e-10 |F|
    np.testing.assert_allclose(num, J, rtol=1e-7, atol=1e-8)


def test_numeric_jacobian_refuses_bad_input():
    F = lambda z: z ** 2  # noqa: E731
    with pytest.raises(ValueError, match=r"x contains a non-finite value \(nan\)"):
        numeric_jacobian(F, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="h must be finite and > 0, got 0.0"):
        numeric_jacobian(F, np.ones(2), h=0.0)
    with pytest.raises(TypeError, match="must be callable"):
        numeric_jacobian(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="at least one entry"):
        numeric_jacobian(F, np.zeros(0))


def test_check_directions_passes_a_nonlinear_gradient_and_fails_a_nan_loss():
    F, x, J = _tanh_quadratic(3, 4, 1)
    f = lambda z: float(F(z)[0])  # noqa: E731  scalar: its gradient is J[0]
    assert_gradients_close(*check_directions(f, x, J[0], np.random.default_rng(0), 4), "tanh + quadratic")
    with pytest.raises(AssertionError):
        assert_gradients_close(*check_directions(f, x, 1.01 * J[0], np.random.default_rng(0), 4))
    nan_loss = lambda z: f(z) * np.nan  # noqa: E731  an overflowing loss: its differences are NaN
    num, ana = check_directions(nan_loss, x, J[0], np.random.default_rng(0), 3)
    assert np.all(np.isnan(num))
    with pytest.raises(AssertionError, match="not finite"):
        assert_gradients_close(num, ana)
    num, ana = check_directions(f, x, np.full(4, np.nan), np.random.default_rng(0), 3)  # a NaN gradient
    with pytest.raises(AssertionError, match="not finite"):
        assert_gradients_close(num, ana)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(grad=np.ones(3)), ValueError, r"grad has shape \(3,\) but x has shape \(4,\)"),
    (dict(grad=np.ones((4, 1))), ValueError, r"grad has shape \(4, 1\) but x has shape \(4,\)"),
    (dict(rng=np.random), TypeError, "rng must be a numpy.random.Generator"),
    (dict(rng=0), TypeError, "rng must be a numpy.random.Generator"),
    (dict(directions=0), ValueError, "directions must be finite and > 0, got 0"),
    (dict(directions=True), TypeError, "directions must be an integer, got True"),
    (dict(directions=2.0), TypeError, "directions must be an integer"),
    (dict(h=-1e-6), ValueError, "h must be finite and > 0"),
    (dict(h=np.nan), ValueError, "h must be finite and > 0"),
    (dict(x=np.array([1.0, np.inf, 0.0, 0.0])), ValueError, r"x contains a non-finite value \(inf\)"),
])
def test_check_directions_refuses_bad_input(kwargs, error, match):
    args = dict(f=lambda z: float(np.sum(z ** 2)), x=np.ones(4), grad=2 * np.ones(4), rng=np.random.default_rng(0))
    with pytest.raises(error, match=match):
        check_directions(**(args | kwargs))


def test_directional_derivative_of_a_nonlinear_function():
    x, v = np.array([0.3, -1.2, 2.0]), np.array([1.0, 2.0, -0.5])
    exact = np.sum((1.0 - np.tanh(x) ** 2) * v)  # d/dt sum tanh(x + t v) at t = 0
    assert directional_derivative(lambda z: np.sum(np.tanh(z)), x, v) == pytest.approx(exact, rel=1e-8, abs=1e-10)
    with pytest.raises(ValueError, match=r"v has shape \(2,\) but x has shape \(3,\)"):
        directional_derivative(lambda z: np.sum(z), x, v[:2])
    with pytest.raises(ValueError, match="h must be finite and > 0, got 0"):
        directional_derivative(lambda z: np.sum(z), x, v, h=0)
    with pytest.raises(ValueError, match=r"f must return a real scalar, got ndarray of shape \(3,\)"):
        directional_derivative(lambda z: np.tanh(z), x, v)
    assert math.isnan(_quiet(lambda: directional_derivative(lambda z: np.inf, x, v)))  # inf - inf: NaN, no warning


# --- metrics -------------------------------------------------------------------------------------------------


def test_direction_metrics_on_zero_vectors():
    u, z = np.array([3.0, 4.0]), np.zeros(2)
    assert cosine(u, z) == 0.0 and cosine(z, z) == 0.0
    assert normalized_difference(u, z) == 1.0 and normalized_difference(z, z) == 0.0
    assert relative_difference(z, z) == 0.0
    assert _quiet(lambda: relative_difference(1e10 * u, z)) == math.inf  # relative to nothing: inf, no overflow
    assert relative_difference(z, u) == 1.0


@pytest.mark.parametrize("metric", [cosine, normalized_difference, relative_difference])
def test_direction_metrics_refuse_nan_and_bad_shapes(metric):
    with pytest.raises(ValueError, match=r"u contains a non-finite value \(nan\)"):
        metric(np.array([np.nan, 1.0]), np.ones(2))
    with pytest.raises(ValueError, match=r"v contains a non-finite value \(inf\)"):
        metric(np.ones(2), np.array([np.inf, 1.0]))
    with pytest.raises(ValueError, match=r"u has shape \(1,\) but v has shape \(3,\)"):
        metric(np.ones(1), np.ones(3))  # a length-1 vector would broadcast against any d
    with pytest.raises(ValueError, match=r"u has shape \(2, 3\) but v has shape \(4, 3\)"):
        metric(np.ones((2, 3)), np.ones((4, 3)))  # batches that do not broadcast
    with pytest.raises(ValueError, match=r"u has shape \(2, 0\)"):
        metric(np.ones((2, 0)), np.ones((2, 0)))
    assert metric(np.ones((5, 2, 3)), np.ones(3)).shape == (5, 2)  # leading dimensions broadcast


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1e30, 1e200])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direction_metrics_at_extreme_scales(scale, dtype):
    if dtype is np.float32 and scale in (1e-200, 1e200):
        scale = {1e-200: 1e-40, 1e200: 1e36}[scale]  # float32's subnormal and near-overflow range
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    big_u, big_v = (scale * u).astype(dtype), (scale * v).astype(dtype)
    tol = 1e-5 if dtype is np.float32 else 1e-12
    np.testing.assert_allclose(_quiet(lambda: cosine(big_u, big_v)), cosine(u, v), rtol=tol, atol=tol)
    np.testing.assert_allclose(_quiet(lambda: cosine(big_u, big_u)), 1.0, rtol=tol)
    np.testing.assert_allclose(_quiet(lambda: normalized_difference(big_u, big_v)), normalized_difference(u, v),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(_quiet(lambda: relative_difference(big_u, big_v)), relative_difference(u, v),
                               rtol=tol, atol=tol)


def test_accuracy_on_bad_input_and_extremes():
    X = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]])
    y = np.array([[1.0, -1.0, -1.0]])
    w = np.array([[1.0, -0.5]])
    assert accuracy(w, X, y) == 1.0
    assert accuracy(np.zeros((1, 2)), X, y) == pytest.approx(1 / 3)  # ties count as +1
    for dtype, scale in ((np.float32, 1e30), (np.float64, 1e200), (np.float64, 1e-200)):
        big = _quiet(lambda: accuracy((scale * w).astype(dtype), (scale * X).astype(dtype), y.astype(dtype)))
        assert big == 1.0  # <w, x> overflows (or underflows) unscaled; the signs do not change
    with pytest.raises(ValueError, match="w must be given"):
        accuracy(None, X, y)
    with pytest.raises(ValueError, match=r"w contains a non-finite value \(nan\)"):
        accuracy(np.array([[np.nan, 1.0]]), X, y)
    with pytest.raises(ValueError, match=r"w has shape \(1, 3\) but X has shape \(1, 3, 2\)"):
        accuracy(np.ones((1, 3)), X, y)
    with pytest.raises(ValueError, match=r"labels y must be in \{-1, \+1\}, found 0.0"):
        accuracy(w, X, np.array([[1.0, 0.0, -1.0]]))


@pytest.mark.parametrize("a, k, error, match", [
    (np.ones((2, 5)), 2, ValueError, r"a must be one series of shape \(T,\), got shape \(2, 5\)"),
    (np.array([1.0, np.nan, 2.0]), 2, ValueError, r"a contains a non-finite value \(nan\)"),
    (np.ones(5), 0, ValueError, "k must be finite and > 0, got 0"),
    (np.ones(5), True, TypeError, "k must be an integer, got True"),
    (np.ones(5), 2.0, TypeError, "k must be an integer, got 2.0"),
    (np.ones(5), 6, ValueError, r"window k = 6 is longer than the series \(5 entries\)"),
    (np.ones(0), 1, ValueError, r"window k = 1 is longer than the series \(0 entries\)"),
])
def test_moving_average_refuses_bad_input(a, k, error, match):
    with pytest.raises(error, match=match):
        moving_average(a, k)


def test_moving_average_extremes():
    a = np.float32([3e38, 3e38, 3e38, -3e38])
    np.testing.assert_allclose(_quiet(lambda: moving_average(a, 2)), [3e38, 3e38, 0.0], rtol=1e-6, atol=1e32)
    np.testing.assert_array_equal(moving_average(np.arange(4.0), 1), np.arange(4.0))
