"""Chapter 10's asserted claims hold whatever the seed (ngdformer.experiments.ch10).

Each test asserts a claim exactly as the chapter does, on five seeds (one generator per seed and
experiment). The worst values measured over seeds 0-7 while writing the chapter are in the comments;
the bounds keep headroom over them.
"""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.experiments import ch10 as ex

pytestmark = pytest.mark.slow  # multi-seed runs: the default environment runs them, CI's extra ones skip them

SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
def test_identity_errors(seed):
    errors = ex.identity_errors(np.random.default_rng(seed))
    assert set(errors) == set(ex.LAYERS)
    assert max(errors.values()) < 1e-12  # worst 3.5e-15 (exp)


@pytest.mark.parametrize("seed", SEEDS)
def test_race(seed):
    race = ex.race(np.random.default_rng(seed), batch=64, n=40, d=10, eta=0.5)
    at = {t: int(np.flatnonzero(race["depths"] == t)[0]) for t in (10, 100, 1000, 10000)}
    F = {layer: race["fraction"][layer].mean(axis=1) for layer in ex.LAYERS}
    relu_frac = race["fraction"]["relu"][at[10000]]
    assert F["softmax"][at[1000]] > 0.95 and F["softmax"][at[10000]] > 0.99  # worst 0.968 and 0.9967
    assert race["cosine"]["softmax"][at[10000]].mean() > 0.9999  # worst 0.99999
    for act in ("sigmoid", "exp"):
        assert np.all(np.diff(F[act][at[100]:]) > 0)
        assert F[act][at[10000]] < min(0.9, F["softmax"][at[1000]])  # largest 0.859
    assert race["ls_error"] < 1e-10 and F["linear"][at[10000]] < 0  # worst 1.5e-15 and -0.44
    assert np.sum(race["misclassified"] > 0) > 32  # fewest 44 of 64
    assert abs(F["linear"][at[10000]] - F["linear"][at[1000]]) < 1e-9
    assert race["norm"]["relu"][at[10000]].max() < 1.05 and F["relu"][at[10000]] < 0.999  # worst 1.020 and 0.9966
    assert np.sum(relu_frac > 1 - 1e-6) < 32  # most 4 of 64
    for act in ("sigmoid", "exp", "softmax"):
        assert race["norm"][act][at[10000]].min() > 1.5  # smallest 2.25
    assert abs(F["sigmoid"][at[10]] - F["exp"][at[10]]) > 0.3  # smallest 0.71
    assert abs(F["sigmoid"][at[10000]] - F["exp"][at[10000]]) < 0.05  # largest 0.012


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_layer_has_stopped_by_depth_ten_thousand(seed):
    """Break it (a): looped further, to 3e4, the ReLU layer's mean margin fraction moves by less than 1e-3."""
    X, y, _ = nf.sample_tasks(np.random.default_rng(seed), 64, 40, 10)
    w = nf.elementwise_trajectory(nf.embed(X, y), *nf.gd_weights(10, 0.5, 40), 40, 30000, "relu")
    w_mm = nf.max_margin(X, y)
    change = nf.margin_fraction(w[30000], X, y, w_mm).mean() - nf.margin_fraction(w[10000], X, y, w_mm).mean()
    assert abs(change) < 1e-3  # largest 3e-5


@pytest.mark.parametrize("seed", SEEDS)
def test_context_shift(seed):
    shift = ex.context_shift(np.random.default_rng(seed), n_built=20, ns=(10, 20, 40, 80), d=5, eta=0.5)
    for n, s in shift.items():
        assert max(s["scaled"].values()) < 1e-12 and s["softmax"] < 1e-9  # worst of 20 seeds 2.7e-14 and 4.0e-12
        if n != 20:
            assert min(s["same"].values()) > 1e-2  # smallest 0.25
        else:
            assert max(s["same"].values()) < 1e-12
    assert 32 < shift[80]["grown"] <= shift[80]["unstable"]  # fewest grown of 20 seeds: 63 of 64


@pytest.mark.parametrize("seed", SEEDS)
def test_step_size_sweep(seed):
    sweep = ex.step_size_sweep(np.random.default_rng(seed), ratios=(0.5, 0.9, 1.1, 1.5), softmax_etas=(1.0, 3.0, 10.0))
    for r, dist in sweep["linear"].items():
        assert np.all(dist[-1] < 1e-3) if r < 1 else np.all(dist[-1] > 1e6)  # worst 2.3e-7 below, 7e11 above
    for eta, frac in sweep["softmax_fraction"].items():
        assert sweep["softmax_growth"][eta] <= 1.0 + 1e-12  # at most 0.43
        assert 0 < frac[-1].mean() and frac[50].mean() < frac[-1].mean()  # smallest mean 0.53 (eta = 10)
    assert sweep["softmax_fraction"][10.0][-1].mean() < sweep["softmax_fraction"][1.0][-1].mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_training_runs_and_gradient_tails(seed):
    rng = np.random.default_rng(seed)
    runs = ex.training_runs(rng, n=20, d=5, eta=0.5)
    runs["exp, sigma0 = 0.2"] = ex.training_runs(rng, n=20, d=5, eta=0.5, activations=("exp",), sigma0=0.2)["exp"]
    for act in ("linear", "relu", "sigmoid", "exp, sigma0 = 0.2"):
        assert runs[act][2]["dist"][-1] < 1e-8, act  # worst 1.2e-12
    assert runs["exp"][2]["dist"][-1] > 1e-2  # smallest 0.078
    tails = ex.gradient_tails(rng, n=20, d=5, eta=0.5, sigma0s=(None, 0.2), activations=("sigmoid", "exp"),
                              batches=500)
    assert tails["exp", None]["ratio"] > 30 and tails["sigmoid", None]["ratio"] < 3  # smallest 132, largest 1.8


def test_step_limits_and_least_squares_by_hand():
    X = np.array([[[2.0, 0.0], [0.0, 1.0]]])  # second moment diag(2, 0.5): lambda_max = 2
    y = np.array([[1.0, -1.0]])
    np.testing.assert_allclose(ex.step_limits(X), [1.0], rtol=1e-15)
    np.testing.assert_allclose(ex.least_squares(X, y), [[0.5, -1.0]], rtol=1e-15)  # interpolates: m_i = 1
    np.testing.assert_allclose(nf.squared_loss_grad(ex.least_squares(X, y), X, y), 0.0, atol=1e-15)
