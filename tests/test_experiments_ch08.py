"""Chapter 08's asserted claims hold for every seed tried, not only the chapter's.

Each test reruns one of the chapter's experiments (``ngdformer.experiments.ch08``) at the chapter's
sizes on several seeds and asserts what the chapter asserts about it, with the chapter's bounds.
The bounds were set from 50 to 90 seeds with headroom; the worst values measured are in the comments.
The trained models are cached per seed, so each is trained once for all the tests that read it.
"""

import functools

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.experiments import ch08 as ex

pytestmark = pytest.mark.slow  # multi-seed runs: the default environment runs them, CI's extra ones skip them

N_CTX, DIM = 20, 5  # the chapter's n and d
PLAN = {5: (500, 0.02), 10: (500, 0.02), 20: (500, 0.01)}  # the chapter's depths -> (Adam iterations, lr)
SEEDS = range(5)


@functools.lru_cache(maxsize=None)
def _depth_models(seed):
    rng = np.random.default_rng(seed)
    models = ex.train_depths(rng, PLAN, n=N_CTX, d=DIM, batch=16)
    summary = {L: ex.training_summary(hist) for L, (_, _, hist) in models.items()}
    cmp, cos_mm = ex.compare_with_ngd(rng, models, n=N_CTX, d=DIM)
    return models, summary, cmp


@functools.lru_cache(maxsize=None)
def _fig5(seed):
    return ex.ngd_target_runs(np.random.default_rng(seed), etas=(0.5, 1.0), depth=5, n=N_CTX, d=DIM, iterations=800,
                              batch=32, lr=0.03, sigma0=0.5)


@pytest.mark.parametrize("seed", range(20))
def test_end_loss_gradient_passes_the_checker(seed):
    g = ex.gradient_check(np.random.default_rng(seed))
    nf.assert_gradients_close(g["num_W"], g["ana_W"], "looped dW")  # worst over 50 seeds: 4e-4 of the tolerance
    nf.assert_gradients_close(g["num_V"], g["ana_V"], "looped dV")


@pytest.mark.parametrize("seed", range(20))
def test_rescaling_identity_to_round_off(seed):
    assert ex.rescaling_error(np.random.default_rng(seed), n=N_CTX, d=DIM, c1=1.7, c2=0.3, depth=10) < 1e-12


@pytest.mark.parametrize("seed", range(20))
def test_same_product_same_direction(seed):
    same = ex.same_product(np.random.default_rng(seed), ((1.7, 0.3), (0.85, 0.6)), n=N_CTX, d=DIM, depth=10)
    assert same["diff"] < 1e-12 and abs(same["ratio_min"] - 2) < 1e-12 and abs(same["ratio_max"] - 2) < 1e-12


@pytest.mark.parametrize("seed", range(10))
def test_structured_iterate_is_the_looped_layer(seed):
    rng = np.random.default_rng(seed)
    X, y, _ = nf.sample_tasks(rng, 8, 12, 4)
    w0 = rng.standard_normal((8, 4))
    c1, c2 = rng.uniform(0.3, 2.0, size=2)
    W, V = ex.structured_layer(c1, c2, 4)
    w_tf = nf.read_weights(nf.looped_forward(nf.embed(X, y, w0), W, V, 12, 7))
    assert nf.rel_error(w_tf, ex.structured_iterate(X, y, w0, c1, c2, 7)) < 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_training_claims(seed):
    # worst over 100 seeds: loss falls 3.1-fold, ends at 0.0998; |c| after one iteration 0.033; c1 0.41, c2 0.065;
    # w12_off 0.57; at depth 20 v21_off - w12_off 0.15 and v21_off 0.42; c2 gaps 0.052, 0.073; c1 gap 0.11
    _, summary, _ = _depth_models(seed)
    for L, s in summary.items():
        assert s["loss_end"] < min(0.15, s["loss_start"] / 2.5), (L, s)
        assert abs(s["c1_first"]) < 0.06 and abs(s["c2_first"]) < 0.06, (L, s)
        assert s["c1"] > 0.3 and s["c2"] > 0.04 and s["w12_off"] < 0.7, (L, s)
    assert summary[5]["c2"] > summary[10]["c2"] > summary[20]["c2"]
    assert min(summary[5]["c1"], summary[10]["c1"]) > summary[20]["c1"]
    assert summary[20]["v21_off"] > max(0.3, summary[20]["w12_off"])


@pytest.mark.parametrize("seed", SEEDS)
def test_depth20_block_claims(seed):
    # worst over 100 seeds: W12 norm 1.10x the next block of W; V21 trace 0.20 above the next; tr W12 -2.1;
    # W22 norm 0.38x W12's (the sign of tr W22, positive in 99 of 100, is not claimed)
    models, _, _ = _depth_models(seed)
    rep = ex.block_report(*models[20][:2])
    assert rep["norm"]["W12"] > max(rep["norm"][b] for b in ("W11", "W21", "W22")) and rep["trace"]["W12"] < 0
    assert rep["trace"]["V21"] > max(rep["trace"][b] for b in ("V11", "V12", "V22")) and rep["trace"]["V21"] > 0
    assert rep["norm"]["W22"] > 0.25 * rep["norm"]["W12"] and not rep["inert"]


@pytest.mark.parametrize("seed", SEEDS)
def test_comparison_with_ngd(seed):
    # worst over 100 seeds: cosine 0.914; |cos gap| 0.026; trained - best NGD +0.0019; angle 2.9 to 8.6 degrees;
    # length 0.866; eta gaps 0.071, 0.088
    _, _, cmp = _depth_models(seed)
    for L, r in cmp.items():
        assert r["cos_tf"] > 0.88 and abs(r["cos_tf"] - r["cos_ngd"]) < 0.04, (L, r)
        assert r["cos_tf"] < r["cos_best"] + 0.01 and 2 < r["angle_deg"] < 12, (L, r)
        assert 0.8 < r["norm"] < 1.0, (L, r)
    assert cmp[5]["eta"] > cmp[10]["eta"] > cmp[20]["eta"]


@pytest.mark.parametrize("seed", SEEDS)
def test_ngd_target_claims(seed):
    # worst over 90 seeds: |c1 c2 / eta - 1| 0.025; loss falls 133-fold; off_identity 0.151; direction 0.048;
    # eta = 0.5: |c1 - 1| 0.075, |c2 / eta - 1| 0.076; eta = 1: c1 1.20, c2 / eta 0.84, projection 7.9% from 1 - 1/c1,
    # rel / rel_proj 0.25; last 300 iterations 6.7%; |c| after one iteration 0.045; c1 overshoot 0.026
    runs = _fig5(seed)
    for eta, r in runs.items():
        h = r["hist"]
        assert abs(r["c1"] * r["c2"] / eta - 1) < 0.04, (eta, r["c1"] * r["c2"])
        assert h["loss"][-50:].mean() < h["loss"][:10].mean() / 50
        assert h["w12_off"][-1] < 0.25 and h["v21_off"][-1] < 0.25 and r["diff"] < 0.08
        assert abs(h["c1"][0]) < 0.06 and abs(h["c2"][0]) < 0.06
        assert np.abs(h["c1"][-300:] * h["c2"][-300:] / eta - 1).max() < 0.1
    r05, r1 = runs[0.5], runs[1.0]
    assert abs(r05["c1"] - 1) < 0.12 and abs(r05["c2"] / 0.5 - 1) < 0.12
    assert r1["c1"] > 1.15 and r1["c2"] / 1.0 < 0.88
    assert abs(r1["rel_proj"] / (1 - 1 / r1["c1"]) - 1) < 0.15
    assert r1["rel"] < 0.5 * r1["rel_proj"]
    assert r1["hist"]["c1"].max() > r1["c1"] + 0.01 and r1["c1"] > 1


def test_learning_rate_is_the_cosine_schedule():
    """The figure's right panels draw the schedule nf.train_looped used."""
    runs = ex.ngd_target_runs(np.random.default_rng(0), etas=(0.5,), depth=2, n=6, d=2, iterations=7, batch=4)
    lr = runs[0.5]["lr"]
    assert lr.shape == (7,) and lr[0] == pytest.approx(0.02) and np.all(np.diff(lr) < 0) and lr[-1] < 0.02 * 0.06
