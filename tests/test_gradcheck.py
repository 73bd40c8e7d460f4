"""The package's gradient checker: it must pass right gradients and flag wrong ones."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import (assert_gradients_close, check_directions, directional_derivative, gradient_errors,
                       numeric_jacobian, rel_error)


def _quadratic(seed, d):
    """f(x) = 1/2 x^T A x + b^T x with its exact gradient A x + b (A symmetric)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    A = A + A.T
    b = rng.standard_normal(d)
    x = rng.standard_normal(d)
    return (lambda z: 0.5 * z @ A @ z + b @ z), x, A @ x + b, rng


@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 6))
def test_checker_passes_right_gradient_and_flags_scaled_one(seed, d):
    f, x, grad, rng = _quadratic(seed, d)
    num, ana = check_directions(f, x, grad, rng, directions=4)
    assert_gradients_close(num, ana, "quadratic")
    if np.max(np.abs(ana)) > 1e-2:  # 1% off must be caught whenever the derivative is not tiny
        num_bad, ana_bad = check_directions(f, x, 1.01 * grad, np.random.default_rng(seed), directions=4)
        big = np.abs(ana_bad) > 1e-2
        if np.any(big):
            with pytest.raises(AssertionError, match="quadratic"):
                assert_gradients_close(num_bad[big], ana_bad[big], "quadratic")


def test_checker_flags_wrong_gradient_fixed_case():
    f, x, grad, rng = _quadratic(0, 5)
    num, ana = check_directions(f, x, grad, rng, directions=5)
    assert np.max(gradient_errors(num, ana)) < 1e-2  # right gradient: far inside the tolerance
    num, ana = check_directions(f, x, 1.01 * grad, np.random.default_rng(1), directions=5)
    assert np.max(gradient_errors(num, ana)) > 1.0
    with pytest.raises(AssertionError, match="numeric .* vs analytic"):
        assert_gradients_close(num, ana)
    wrong = grad.copy()
    wrong[0] += 1e-3  # a single wrong entry
    num, ana = check_directions(f, x, wrong, np.random.default_rng(2), directions=5)
    with pytest.raises(AssertionError):
        assert_gradients_close(num, ana)


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 5), cols=st.integers(1, 5))
def test_numeric_jacobian_of_linear_map_is_its_matrix(seed, rows, cols):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rows, cols))
    x = rng.standard_normal(cols)
    J = numeric_jacobian(lambda z: A @ z, x)
    assert J.shape == (rows, cols)
    np.testing.assert_allclose(J, A, rtol=0, atol=1e-8)


def test_numeric_jacobian_keeps_array_shapes():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 3, 4, 5))  # F(x) = einsum over a (4, 5) input to a (2, 3) output
    x = rng.standard_normal((4, 5))
    J = numeric_jacobian(lambda z: np.einsum("abij,ij->ab", A, z), x)
    assert J.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(J, A, rtol=0, atol=1e-8)


def test_directional_derivative_of_cubic():
    # (x+h)^3 - (x-h)^3 = 6 x^2 h + 2 h^3: the central difference is exact up to h^2 and round-off
    assert abs(directional_derivative(lambda z: float(z[0] ** 3), np.array([2.0]), np.array([1.0])) - 12.0) < 1e-7


def test_gradient_errors_scale():
    # |num - ana| <= 1e-6 + 1e-5 |ana| passes, exactly at the edge the ratio is 1
    assert gradient_errors(1.0 + 1.1e-5, 1.0) == pytest.approx(1.0, rel=1e-3)
    assert gradient_errors(2e-6, 1e-6) == pytest.approx(1e-6 / (1e-6 + 1e-11))
    assert_gradients_close(np.array([1.0 + 1e-5]), np.array([1.0]))
    with pytest.raises(AssertionError):
        assert_gradients_close(np.array([1.0 + 2e-5]), np.array([1.0]))


def test_rel_error():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2)
