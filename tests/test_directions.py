"""angle: against arccos at moderate angles, exact small angles, broadcasting, bad input."""

import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ngdformer as nf


@given(seed=st.integers(0, 2**32 - 1), d=st.integers(2, 6), scale=st.floats(1e-3, 1e3))
def test_angle_matches_arccos_and_is_symmetric(seed, d, scale):
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal((2, 4, d))
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    theta = nf.angle(scale * u, v)
    assert np.allclose(theta, np.arccos(np.clip(cos, -1, 1)), atol=1e-7)  # arccos itself is only ~1e-8 accurate
    assert np.allclose(theta, nf.angle(v, u), rtol=0, atol=1e-15)
    assert np.all((theta >= 0) & (theta <= np.pi))


def test_angle_small_and_opposite():
    e = np.array([1.0, 0.0])
    for eps in (1e-3, 1e-10, 1e-15):
        assert abs(nf.angle(e, np.array([1.0, eps])) - np.arctan(eps)) <= 1e-15 * eps + 1e-30
        assert abs(nf.angle(e, np.array([-1.0, eps])) - (np.pi - np.arctan(eps))) < 1e-15
    assert nf.angle(e, 3 * e) == 0.0
    assert np.arccos(np.cos(1e-10)) == 0.0  # what the stable form avoids


def test_angle_broadcasts_a_trajectory():
    rng = np.random.default_rng(0)
    traj, w = rng.standard_normal((5, 3, 4)), rng.standard_normal((3, 4))
    got = nf.angle(traj, w)
    assert got.shape == (5, 3)
    assert np.allclose(got[2, 1], nf.angle(traj[2, 1], w[1]), rtol=0, atol=0)


@pytest.mark.parametrize("u, v, match", [
    (np.zeros(3), np.ones(3), "u has a zero row"),
    (np.ones(3), np.zeros((2, 3)), "v has a zero row"),
    (np.ones(3), np.ones(2), "last dimensions"),
    (np.array([1.0, np.nan]), np.ones(2), "non-finite"),
    (np.ones((2, 3)), np.ones((4, 3)), r"u has shape \(2, 3\) and v has shape \(4, 3\): their leading dimensions"),
    (np.ones((2, 0)), np.ones((2, 0)), r"last dimensions must match and be >= 1"),
    (np.float64(1.0), np.ones(1), "u must have at least 1 dimensions"),
    (np.ones(2), np.array(["a", "b"]), "v must be real numeric"),
    (np.ones(2, dtype=complex), np.ones(2), "u must be real numeric"),
])
def test_angle_bad_input(u, v, match):
    with pytest.raises(ValueError, match=match):
        nf.angle(u, v)


@pytest.mark.parametrize("scale", [1e-310, 1e-200, 1e200, 1.7e308])
def test_angle_of_rows_of_any_magnitude_without_warnings(scale):
    u, v = np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([[4.0, 3.0], [1.0, 1e-8]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = nf.angle(scale * (u / 4.0), v)
    np.testing.assert_allclose(got, nf.angle(u, v), rtol=1e-12)  # subnormal rows keep about 44 bits
