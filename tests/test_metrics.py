"""Metrics helpers."""

import numpy as np
import pytest

from ngdformer import moving_average


def test_moving_average_matches_a_loop():
    a = np.random.default_rng(0).standard_normal(30)
    expected = [a[t:t + 7].mean() for t in range(24)]  # window means, one at a time
    np.testing.assert_allclose(moving_average(a, 7), expected, rtol=1e-13)
    with pytest.raises(ValueError, match="k = 31"):
        moving_average(a, 31)


def test_relative_difference_across_the_whole_float_range():
    """A tiny vector against a zero reference is inf (its rescaling is not set by the zero vector); a reference
    170 decades below the vector still has a norm (each norm is rescaled on its own, so squares never underflow)."""
    from ngdformer.metrics import relative_difference

    assert relative_difference([1e-200], [0.0]) == np.inf
    assert relative_difference([1e200, 0.0], [1e30, 0.0]) == pytest.approx(1e170, rel=1e-12)
    assert relative_difference([3.0, 4.0], [0.0, 1e-300]) == pytest.approx(5e300, rel=1e-12)
    assert relative_difference([1e308, -1e308], [-1e308, 1e308]) == pytest.approx(2.0, rel=1e-15)
