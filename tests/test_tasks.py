"""Task sampling and the token embedding: determinism, every option, shapes and ties."""

import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ngdformer import embed, read_weights, sample_points, sample_tasks, sample_w_star


def test_same_seed_same_tasks_bit_for_bit():
    for kw in ({}, {"margin": 0.3}, {"flip": 0.1}, {"cov": np.diag([1.0, 2.0, 0.5])}):
        a = sample_tasks(np.random.default_rng(11), 4, 7, 3, **kw)
        b = sample_tasks(np.random.default_rng(11), 4, 7, 3, **kw)
        c = sample_tasks(np.random.default_rng(12), 4, 7, 3, **kw)
        for u, v, z in zip(a, b, c):
            assert u.dtype == np.float64
            assert np.array_equal(u, v)  # bit for bit
            assert not np.array_equal(u, z)


def test_shapes_unit_w_star_and_labels_are_signs():
    X, y, w_star = sample_tasks(np.random.default_rng(0), 5, 9, 4)
    assert X.shape == (5, 9, 4) and y.shape == (5, 9) and w_star.shape == (5, 4)
    np.testing.assert_allclose(np.linalg.norm(w_star, axis=-1), 1.0, rtol=1e-14)
    s = np.einsum("bnd,bd->bn", X, w_star)
    assert np.array_equal(y, np.where(s >= 0, 1.0, -1.0))
    assert np.all(y * s >= 0)  # separable through the origin by w_star


def test_w_star_is_uniform_on_the_sphere():
    w = sample_w_star(np.random.default_rng(1), 20000, 3)
    np.testing.assert_allclose(np.linalg.norm(w, axis=-1), 1.0, rtol=1e-14)
    # uniform on S^2: mean 0 and second moment I/3 (std of each estimate ~ 0.004 and 0.002)
    assert np.max(np.abs(w.mean(axis=0))) < 0.02
    np.testing.assert_allclose(w.T @ w / len(w), np.eye(3) / 3, atol=0.01)


@pytest.mark.parametrize("margin", [0.1, 0.5, 2.0])
def test_margin_pushes_every_point(margin):
    X, y, w_star = sample_tasks(np.random.default_rng(2), 8, 50, 3, margin=margin)
    s = np.einsum("bnd,bd->bn", X, w_star)
    assert np.all(np.abs(s) >= margin - 1e-12)
    assert np.array_equal(y, np.where(s >= 0, 1.0, -1.0))  # pushing never changes the side
    assert np.any(np.abs(np.abs(s) - margin) < 1e-12)  # some points were pushed to exactly the margin
    X0, _, _ = sample_tasks(np.random.default_rng(2), 8, 50, 3)  # same draws before the push
    keep = np.abs(np.einsum("bnd,bd->bn", X0, w_star)) >= margin
    np.testing.assert_array_equal(X[keep], X0[keep])  # points already outside are untouched


@pytest.mark.parametrize("flip", [0.05, 0.2, 0.45])
def test_flip_noise_flips_about_the_requested_fraction(flip):
    B, n = 100, 100
    X, y, w_star = sample_tasks(np.random.default_rng(3), B, n, 4, flip=flip)
    clean = np.where(np.einsum("bnd,bd->bn", X, w_star) >= 0, 1.0, -1.0)
    frac = np.mean(y != clean)
    sd = np.sqrt(flip * (1 - flip) / (B * n))
    assert abs(frac - flip) < 5 * sd  # binomial, 5 standard deviations, fixed seed


def test_covariance_is_the_requested_one():
    A = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 0.7]])
    cov = A @ A.T
    X, _, _ = sample_tasks(np.random.default_rng(4), 200, 500, 3, cov=cov)
    x = X.reshape(-1, 3)  # 1e5 samples: each entry's standard error is below 0.01
    np.testing.assert_allclose(x.T @ x / len(x), cov, atol=0.03)
    assert np.max(np.abs(x.mean(axis=0))) < 0.02


def test_singular_covariance_is_allowed():
    cov = np.diag([1.0, 0.0])  # PSD, not PD: x lives on the first axis
    X, y, _ = sample_tasks(np.random.default_rng(5), 3, 20, 2, cov=cov)
    assert np.all(np.isfinite(X)) and np.max(np.abs(X[..., 1])) < 1e-4


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e9])
def test_low_rank_covariances_are_allowed_at_every_scale(scale):
    """A A^T of rank 1 or 2 is PSD; its round-off eigenvalues may be slightly negative and must not be refused."""
    rng = np.random.default_rng(12)
    for d, r in ((2, 1), (5, 2), (20, 2)):
        for _ in range(30):
            A = scale * rng.standard_normal((d, r))
            X, _, _ = sample_tasks(np.random.default_rng(13), 2, 4, d, cov=A @ A.T)
            P = A @ np.linalg.pinv(A)  # projector onto the column space of A
            np.testing.assert_allclose(X @ P, X, atol=1e-9 * scale * d)  # x lies in range(A)
    with pytest.raises(ValueError, match="cov must be symmetric"):
        sample_tasks(rng, 2, 4, 2, cov=scale * np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        sample_tasks(rng, 2, 4, 2, cov=scale * np.array([[1.0, 0.0], [0.0, -1e-6]]))


def test_tie_counts_as_plus_one():
    w_star = np.array([[1.0, 0.0], [-1.0, 0.0]])
    X, y = sample_points(np.random.default_rng(6), w_star, 5, cov=np.diag([0.0, 1.0]))  # x on the boundary
    assert np.all(np.isfinite(X)) and np.all(X[..., 0] == 0.0)
    assert np.array_equal(y, np.ones((2, 5)))


def test_sample_points_refuses_a_w_star_that_is_not_unit():
    """A direction of length 1.04 would push points to 1.04 x the requested margin: refused, not rescaled."""
    rng = np.random.default_rng(9)
    long = np.array([[3.0, 4.0]]) / 4.8  # norm 1.0417
    with pytest.raises(ValueError, match=r"w_star must have unit rows .*row 0 has norm 1\.04167"):
        sample_points(rng, long, 100, margin=1.0)
    with pytest.raises(ValueError, match=r"row 1 has norm 0;"):
        sample_points(rng, np.array([[1.0, 0.0], [0.0, 0.0]]), 3)
    for shape in ((3,), (1, 2, 2), (0, 2), (2, 0)):
        with pytest.raises(ValueError, match=r"w_star must have (at least 2 dimensions|shape \(B, d\))"):
            sample_points(rng, np.ones(shape) / np.sqrt(shape[-1] or 1), 3)
    # directions typed to seven digits, or normalized in float32, are unit within the tolerance
    X, _ = sample_points(rng, np.array([[0.7071068, -0.7071068]]), 500, margin=1.0)
    assert np.min(np.abs(X @ np.array([1.0, -1.0]) / np.sqrt(2))) > 1.0 - 1e-6
    g = np.random.default_rng(1).standard_normal((4, 300)).astype(np.float32)
    sample_points(rng, g / np.linalg.norm(g, axis=-1, keepdims=True), 2, margin=0.5)


@pytest.mark.parametrize("bad", [None, np.random, 0, np.random.RandomState(0)], ids=["None", "module", "seed",
                                                                                       "RandomState"])
def test_every_rng_argument_must_be_a_generator(bad):
    unit = np.array([[1.0, 0.0]])
    for call in (lambda: sample_w_star(bad, 2, 3), lambda: sample_tasks(bad, 2, 3, 2),
                 lambda: sample_points(bad, unit, 3)):
        with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
            call()


def test_sample_tasks_checks_everything_before_drawing():
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    for kw in ({"margin": -1.0}, {"flip": 1.0}, {"cov": np.eye(3)}, {"margin": "0.1"}, {"flip": True}):
        with pytest.raises(ValueError):
            sample_tasks(rng, 2, 4, 2, **kw)
    assert rng.bit_generator.state == state  # no draw was spent on a refused call


def test_sizes_beyond_the_limit_are_refused_before_allocating():
    rng = np.random.default_rng(0)
    for call, name in ((lambda: sample_tasks(rng, 10**9, 10, 10), "X"),
                       (lambda: sample_w_star(rng, 10**12, 3), "w_star"),
                       (lambda: sample_points(rng, np.eye(2), 10**12), "X"),
                       (lambda: embed(np.ones((1, 10**5, 1, 1)), np.ones((1, 10**5, 1)), np.ones((10**5, 1, 1))), "Z")):
        with pytest.raises(ValueError, match=rf"^{name} would have shape .* the limit is 268435456"):
            call()


@pytest.mark.parametrize("Z, match", [
    (np.zeros((4, 0)), "no columns"),
    (np.zeros((0, 3)), r"even, positive number of rows D = 2d, got D = 0"),
    (np.zeros((2, 3, 3)), r"even, positive number of rows D = 2d, got D = 3"),
    (np.zeros(4), "Z must have at least 2 dimensions"),
    (None, "Z must be real numeric"),
    ([[1.0, 2.0], [3.0]], "Z could not be converted"),
])
def test_read_weights_refuses_bad_tokens_naming_Z(Z, match):
    with pytest.raises(ValueError, match=match):
        read_weights(Z)


def test_embed_refuses_inputs_without_features():
    with pytest.raises(ValueError, match=r"X has shape \(2, 3, 0\): the inputs need d >= 1"):
        embed(np.zeros((2, 3, 0)), np.ones((2, 3)))


@pytest.mark.parametrize("cov, match", [
    (1.5e308 * np.eye(2), None), (1e-310 * np.array([[1.0, 0.5], [0.5, 1.0]]), None),
    (np.array([[1.0, 1.7e308], [-1.7e308, 1.0]]), "cov must be symmetric"),
])
def test_covariances_at_the_ends_of_the_float_range(cov, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if match is None:
            X, _, _ = sample_tasks(np.random.default_rng(0), 2, 50, 2, cov=cov)
            assert np.all(np.isfinite(X)) and np.any(X != 0)
        else:
            with pytest.raises(ValueError, match=match):
                sample_tasks(np.random.default_rng(0), 2, 3, 2, cov=cov)


def test_sample_points_are_fresh_points_of_the_same_tasks():
    rng = np.random.default_rng(7)
    X, y, w_star = sample_tasks(rng, 3, 10, 4)
    Xt, yt = sample_points(rng, w_star, 25)
    assert Xt.shape == (3, 25, 4) and yt.shape == (3, 25)
    assert np.array_equal(yt, np.where(np.einsum("bnd,bd->bn", Xt, w_star) >= 0, 1.0, -1.0))
    assert not np.array_equal(Xt[:, :10], X)


@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 4))
def test_embed_layout_and_read_weights(seed, B, n, d):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d)
    w0 = rng.standard_normal((B, d))
    Z = embed(X, y, w0)
    assert Z.shape == (B, 2 * d, n + 1) and Z.dtype == np.float64
    for b in range(B):  # the embedding layout, entry by entry
        for i in range(n):
            np.testing.assert_array_equal(Z[b, :d, i], y[b, i] * X[b, i])
            np.testing.assert_array_equal(Z[b, d:, i], 0.0)
        np.testing.assert_array_equal(Z[b, :d, n], 0.0)
        np.testing.assert_array_equal(Z[b, d:, n], w0[b])
    np.testing.assert_array_equal(read_weights(Z), w0)
    np.testing.assert_array_equal(embed(X, y), embed(X, y, np.zeros((B, d))))  # default w0 = 0
    np.testing.assert_array_equal(embed(X[0], y[0], w0[0]), Z[0])  # no batch dimension
    assert embed(X.astype(np.float32), y, w0.astype(np.float32)).dtype == np.float64  # y float64 promotes
    assert embed(*(a.astype(np.float32) for a in (X, y, w0))).dtype == np.float32


def test_functions_do_not_mutate_their_inputs():
    X, y, w_star = sample_tasks(np.random.default_rng(8), 2, 5, 3)
    copies = [a.copy() for a in (X, y, w_star)]
    Z = embed(X, y, w_star)
    w = read_weights(Z)
    w += 1.0  # read_weights returns a copy, not a view into Z
    np.testing.assert_array_equal(read_weights(Z), w_star)
    sample_points(np.random.default_rng(0), w_star, 4, margin=0.5)
    for a, c in zip((X, y, w_star), copies):
        np.testing.assert_array_equal(a, c)
