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
