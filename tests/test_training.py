"""Training by hand: loss gradients, one-step training reaching the construction, the unexcited blocks,
looped training."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngdformer import (assert_gradients_close, check_directions, context_is_inert, embed, looped_forward, ngd,
                       ngd_weights, normalized_difference, read_weights, sample_tasks)
from ngdformer.looped_training import looped_batch, looped_loss, train_looped
from ngdformer.training import (block, block_scales, distance_to_construction, from_blocks, off_identity,
                                one_step_batch, one_step_loss, to_blocks, train_one_step_layer)

UNEXCITED = (("W", "11"), ("W", "21"), ("W", "22"), ("V", "12"), ("V", "22"))

problems = st.fixed_dictionaries({"seed": st.integers(0, 2**32 - 1), "d": st.integers(1, 3), "n": st.integers(1, 5),
                                  "B": st.integers(1, 3), "scale": st.sampled_from([0.0, 0.3, 1.0])})


@given(problems, st.floats(0.1, 2.0))
def test_one_step_loss_gradient(p, eta):
    rng = np.random.default_rng(p["seed"])
    Z, target = one_step_batch(rng, p["B"], p["n"], p["d"], eta, sigma0=1.0)
    D = 2 * p["d"]
    W, V = p["scale"] * rng.standard_normal((D, D)), p["scale"] * rng.standard_normal((D, D))
    J, dW, dV = one_step_loss(W, V, Z, target)
    assert J >= 0
    assert_gradients_close(*check_directions(lambda w: one_step_loss(w, V, Z, target)[0], W, dW, rng, 2), "dW")
    assert_gradients_close(*check_directions(lambda v: one_step_loss(W, v, Z, target)[0], V, dV, rng, 2), "dV")


@given(problems, st.integers(1, 4), st.sampled_from(["w_star", "logistic"]))
def test_looped_loss_gradient(p, depth, objective):
    rng = np.random.default_rng(p["seed"])
    Z, targets = looped_batch(rng, p["B"], p["n"], p["d"], objective, sigma0=0.5, n_query=3)
    D = 2 * p["d"]
    # entries of size scale / sqrt(D): with size 1 at depth 4 the iterate explodes (loss ~3e3) and the
    # finite differences' round-off, eps |J| / h, used 0.45 of the tolerance (measured over 10^4 cases)
    W, V = (p["scale"] / np.sqrt(D) * rng.standard_normal((D, D)) for _ in range(2))
    J, dW, dV = looped_loss(W, V, Z, depth, objective, **targets)
    f = lambda w, v: looped_loss(w, v, Z, depth, objective, **targets)[0]  # noqa: E731
    assert_gradients_close(*check_directions(lambda w: f(w, V), W, dW, rng, 2), f"{objective} dW")
    assert_gradients_close(*check_directions(lambda v: f(W, v), V, dV, rng, 2), f"{objective} dV")


@given(problems, st.integers(1, 4), st.floats(0.1, 2.0))
def test_looped_ngd_objective_gradient(p, depth, eta):
    rng = np.random.default_rng(p["seed"])
    Z, targets = looped_batch(rng, p["B"], p["n"], p["d"], "ngd", sigma0=0.5, eta=eta, depth=depth)
    D = 2 * p["d"]
    # entries of size scale / sqrt(D): with size 1 at depth 4 the iterate explodes (loss ~3e3) and the
    # finite differences' round-off, eps |J| / h, used 0.45 of the tolerance (measured over 10^4 cases)
    W, V = (p["scale"] / np.sqrt(D) * rng.standard_normal((D, D)) for _ in range(2))
    J, dW, dV = looped_loss(W, V, Z, depth, "ngd", **targets)
    assert J >= 0 and set(targets) == {"w_ngd"}
    f = lambda w, v: looped_loss(w, v, Z, depth, "ngd", **targets)[0]  # noqa: E731
    assert_gradients_close(*check_directions(lambda w: f(w, V), W, dW, rng, 2), "ngd dW")
    assert_gradients_close(*check_directions(lambda v: f(W, v), V, dV, rng, 2), "ngd dV")


def test_ngd_objective_target_and_zero_loss_at_the_construction():
    Z, targets = looped_batch(np.random.default_rng(3), 8, 10, 3, "ngd", sigma0=0.5, eta=0.7, depth=4)
    X, y, _ = sample_tasks(np.random.default_rng(3), 8, 10, 3)  # looped_batch draws the tasks first
    np.testing.assert_array_equal(Z[:, :3, :10], np.swapaxes(y[..., None] * X, 1, 2))
    np.testing.assert_array_equal(targets["w_ngd"], ngd(Z[:, 3:, -1], X, y, 0.7, 4)[-1])
    J, dW, dV = looped_loss(*ngd_weights(3, 0.7), Z, 4, "ngd", **targets)
    assert J < 1e-28 and np.abs(dW).max() < 1e-13 and np.abs(dV).max() < 1e-13


def test_one_step_loss_is_zero_at_the_construction():
    rng = np.random.default_rng(0)
    Z, target = one_step_batch(rng, 8, 6, 3, 0.7)
    J, dW, dV = one_step_loss(*ngd_weights(3, 0.7), Z, target)
    assert J < 1e-28 and np.max(np.abs(dW)) < 1e-14 and np.max(np.abs(dV)) < 1e-14


def test_block_helpers_and_diagnostics():
    W, V = ngd_weights(3, 0.4)
    np.testing.assert_array_equal(block(W, "W12"), -np.eye(3))
    Wb, Vb = from_blocks(to_blocks(W, V), 3)
    np.testing.assert_array_equal(Wb, W)
    np.testing.assert_array_equal(Vb, V)
    assert block_scales(W, V) == pytest.approx((1.0, 0.4), rel=1e-15)
    assert distance_to_construction(W, V, 0.4) == 0.0
    assert distance_to_construction(2 * W, 2 * V, 0.4) == pytest.approx(1.0)
    assert off_identity(2.5 * np.eye(4)) == 0.0 and off_identity(np.zeros((3, 3))) == 0.0
    assert off_identity(np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def zero_start():
    return train_one_step_layer(np.random.default_rng(1), n=8, d=3, eta=0.5, iterations=500, batch=32, lr=0.03,
                                quiet=True)


def test_one_step_training_reaches_the_construction(zero_start):
    W, V, hist = zero_start
    assert hist["dist"][-1] < 1e-6
    assert hist["loss"][-1] < 1e-3 * hist["loss"][0]
    assert hist["c1"][-1] == pytest.approx(1.0, abs=1e-6) and hist["c2"][-1] == pytest.approx(0.5, abs=1e-6)
    assert set(hist) >= {"loss", "c1", "c2", "dist", "dist_excited", "seconds"}
    assert hist["loss"].shape == (500,)


def test_zero_start_leaves_unexcited_blocks_exactly_zero(zero_start):
    W, V, _ = zero_start
    mats = {"W": W, "V": V}
    for m, rc in UNEXCITED:
        assert np.all(block(mats[m], rc) == 0.0), f"{m}{rc} moved"
    assert np.all(block(V, "11") == 0.0)  # its gradient V11 u u^T / B vanishes while V11 = 0
    assert context_is_inert(W, V)


def test_blocks_mode_equals_full_mode_from_zero_start():
    kw = dict(n=6, d=2, eta=0.5, iterations=30, batch=8, quiet=True)
    Wf, Vf, _ = train_one_step_layer(np.random.default_rng(4), **kw)
    Wb, Vb, _ = train_one_step_layer(np.random.default_rng(4), params="blocks", **kw)
    np.testing.assert_array_equal(Wf, Wb)
    np.testing.assert_array_equal(Vf, Vb)


@pytest.mark.parametrize("params", ["full", "blocks"])
def test_random_start_keeps_unexcited_blocks_and_loops_drift(params):
    rng = np.random.default_rng(2)
    W0, V0 = 0.1 * rng.standard_normal((6, 6)), 0.1 * rng.standard_normal((6, 6))  # init="random" draws these first
    W, V, hist = train_one_step_layer(np.random.default_rng(2), n=8, d=3, eta=0.5, iterations=500, batch=32, lr=0.03,
                                      init="random", params=params, quiet=True)
    mats, mats0 = {"W": W, "V": V}, {"W": W0, "V": V0}
    for m, rc in UNEXCITED:
        np.testing.assert_array_equal(block(mats[m], rc), block(mats0[m], rc))
    assert hist["dist_excited"][-1] < 1e-3  # the excited blocks learn the construction
    assert hist["dist"][-1] > 0.1  # but the whole layer is not W*, V*
    X, y, _ = sample_tasks(np.random.default_rng(3), 16, 8, 3)
    w0 = np.random.default_rng(5).standard_normal((16, 3))
    traj = ngd(w0, X, y, 0.5, 10)
    one = read_weights(looped_forward(embed(X, y, w0), W, V, 8, 1))
    ten = read_weights(looped_forward(embed(X, y, w0), W, V, 8, 10))
    assert np.max(normalized_difference(one, traj[1])) < 1e-2  # one step is still (nearly) right
    assert np.mean(normalized_difference(ten, traj[10])) > 0.1  # ten applications drift far from NGD


def test_training_is_deterministic_and_progress_is_silenceable(capsys):
    kw = dict(n=5, d=2, eta=0.5, iterations=5, batch=4)
    a = train_one_step_layer(np.random.default_rng(7), quiet=True, **kw)
    assert capsys.readouterr().out == ""
    b = train_one_step_layer(np.random.default_rng(7), quiet=False, **kw)
    out = capsys.readouterr().out
    assert "iteration" in out and "loss" in out and "it/s" in out and len(out.splitlines()) <= 2
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2]["loss"], b[2]["loss"])


def test_cosine_schedule_converges_and_is_the_default():
    kw = dict(n=8, d=3, eta=0.5, iterations=300, batch=16, lr=0.05, quiet=True)
    W, V, hist = train_one_step_layer(np.random.default_rng(1), schedule="cosine", **kw)
    assert hist["dist"][-1] < 1e-4  # measured 3.9e-5
    a = train_one_step_layer(np.random.default_rng(1), **(kw | dict(iterations=20)))
    b = train_one_step_layer(np.random.default_rng(1), schedule="constant", **(kw | dict(iterations=20)))
    c = train_one_step_layer(np.random.default_rng(1), schedule="cosine", **(kw | dict(iterations=20)))
    np.testing.assert_array_equal(a[0], c[0])
    assert not np.array_equal(a[0], b[0])


@pytest.mark.parametrize("seed", range(5))
def test_the_default_recipe_reaches_the_construction(seed):
    """Defaults only (Adam, lr 0.02 cosine-decayed, batch 32, 500 iterations, sigma0 = 1/sqrt(d)), five seeds."""
    W, V, hist = train_one_step_layer(np.random.default_rng(seed), n=20, d=5, eta=0.5, quiet=True)
    assert len(hist["loss"]) == 500
    assert hist["dist"][-1] < 1e-4


def test_sgd_with_momentum_also_trains():
    W, V, hist = train_one_step_layer(np.random.default_rng(1), n=8, d=3, eta=0.5, iterations=300, batch=32,
                                      optimizer="sgd", lr=0.5, momentum=0.9, quiet=True)
    assert hist["dist"][-1] < 1e-4


def test_looped_training_learns_identity_like_blocks():
    W, V, hist = train_looped(np.random.default_rng(0), n=12, d=3, depth=3, iterations=300, batch=16, lr=0.03,
                              quiet=True)
    assert hist["loss"][-20:].mean() < 0.5 * hist["loss"][:5].mean()
    assert hist["c1"][-1] > 0.3 and hist["c2"][-1] > 0.1  # scores -c1 m_i, steps +c2 along sum p_i y_i x_i
    assert hist["w12_off"][-1] < hist["w12_off"][0]
    assert {"loss", "c1", "c2", "w12_off", "v21_off", "seconds"} <= set(hist)


def test_looped_ngd_objective_trains_towards_step_eta():
    W, V, hist = train_looped(np.random.default_rng(2), n=12, d=3, depth=3, iterations=300, batch=16, lr=0.03,
                              objective="ngd", eta=0.5, sigma0=0.5, quiet=True)
    assert hist["loss"][-20:].mean() < 3e-3 * hist["loss"][:5].mean()  # measured 2.9e-4
    assert abs(hist["c1"][-1] * hist["c2"][-1] - 0.5) < 0.1  # measured 0.47


def test_looped_logistic_objective_trains():
    W, V, hist = train_looped(np.random.default_rng(1), n=12, d=3, depth=2, iterations=150, batch=16, lr=0.03,
                              objective="logistic", quiet=True)
    assert hist["loss"][-10:].mean() < hist["loss"][:5].mean() - 0.05


@pytest.mark.parametrize("kwargs, match", [
    (dict(params="diag"), "params"), (dict(init="ones"), "init"), (dict(optimizer="lbfgs"), "optimizer"),
    (dict(eta=-1.0), "eta"), (dict(iterations=1.5), "iterations"), (dict(sigma0=-1.0), "sigma0"),
    (dict(schedule="step"), "schedule"),
])
def test_one_step_training_bad_arguments(kwargs, match):
    args = dict(n=5, d=2, eta=0.5, iterations=2, quiet=True) | kwargs
    with pytest.raises(ValueError, match=match):
        train_one_step_layer(np.random.default_rng(0), **args)


@pytest.mark.parametrize("kwargs, match", [(dict(objective="mse"), "objective"), (dict(depth=0), "depth"),
                                           (dict(schedule="step"), "schedule"), (dict(objective="ngd"), "eta"),
                                           (dict(objective="ngd", eta=-0.5), "eta")])
def test_looped_training_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_looped(np.random.default_rng(0), **(dict(n=5, d=2, depth=2, iterations=2, quiet=True) | kwargs))


def test_one_step_loss_is_the_mean_over_batches_of_one_and_refuses_an_unbatched_task():
    Z, target = one_step_batch(np.random.default_rng(8), 3, 5, 2, 0.5)
    W, V = 0.1 * np.ones((4, 4)), 0.2 * np.eye(4)
    J, dW, dV = one_step_loss(W, V, Z, target)
    singles = [one_step_loss(W, V, Z[b:b + 1], target[b:b + 1]) for b in range(3)]
    assert J == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-14)
    np.testing.assert_allclose(dW, np.mean([s[1] for s in singles], axis=0), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(dV, np.mean([s[2] for s in singles], axis=0), rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match=r"Z has shape \(4, 6\), expected a batch of shape \(B, D, N\)"):
        one_step_loss(W, V, Z[0], target[0])  # a single task is Z[None], target[None]
    with pytest.raises(ValueError, match="target has shape"):
        one_step_loss(W, V, Z, target[:2])
