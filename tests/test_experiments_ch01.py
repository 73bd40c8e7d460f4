"""Every claim chapter 01 asserts about its experiments, on several seeds (the chapter runs seed 1).

Bounds, and the worst values measured while choosing them (seeds 0-59 for the gradient check
and the extreme margins; seeds 0-39 for GD with 20,000 steps, B = 16, n = 20, d = 5, margin
0.1, eta = 1; seeds 0-9 for eta = 2), so that the headroom is visible:

- gradient check: largest relative error 2.3e-9 (bound 1e-8); largest share of the checker's
  tolerance used 0.011 (bound 1);
- extreme margins: loss at +1e3 w* between 5e-188 and 9.3e-45 (bounds 0, e^-100 = 3.7e-44);
  at -1e3 w* exactly the mean |m| (bound 1e-14); finite, no warning;
- GD: norms grow and the mean angle falls at every checkpoint (every seed); slope ratio per
  task 0.75 .. 0.99 (bounds 0.6, 1.05), its mean over tasks 0.90 .. 0.935 (bounds 0.85, 1.0);
  mean angle at t = 20,000 0.052 .. 0.095 (bound 0.03); mean angle ratio over the last decade
  0.62 .. 0.78 (bounds 0.5, 0.9), over the c / log t prediction 0.80 .. 1.01 (bounds 0.7, 1.3);
  t eta L(w_t) / ||w_mm||^2, mean over tasks, 0.92 .. 0.96 at t = 20,000 (bounds 0.85, 1.05)
  and 0.80 .. 0.86 at t = 2,000 (below the former on every seed); normalized margin over the
  max-margin value at t = 20,000, mean over tasks, 0.90 .. 0.93 (bound 0.97); eta beta at most
  0.82 (bound 2); mean slope between the last two checkpoints 0.940 .. 0.965, always the
  largest (bounds 0.85, 1.0);
- eta = 2 against eta = 1 (inline question 2): mean norm rise over mean ||w_mm|| log 2
  0.955 .. 0.967 (bounds 0.85, 1.1); mean angle factor 0.907 .. 0.922 (bounds 0.85, 0.97).
"""

import functools

import numpy as np
import pytest

from ngdformer.experiments import ch01

GD_SEEDS = range(5)


@pytest.mark.parametrize("seed", range(10))
def test_gradient_check(seed):
    X, y, _, w = ch01.chapter_tasks(seed)
    result = ch01.gradient_check(X, y, w, np.random.default_rng(seed))
    for name in ("logistic", "exp"):
        assert result[name]["rel_error"] < 1e-8, result
        assert result[name]["tolerance_used"] <= 1.0, result
    assert result["min_margin"] < 0 and result["max_exp_loss"] > 1  # the check includes misclassified points


@pytest.mark.parametrize("seed", range(10))
def test_extreme_margins(seed):
    X, y, w_star, _ = ch01.chapter_tasks(seed)
    assert (np.einsum("bnd,bd->bn", X, w_star) * y).min() > 0.1 - 1e-12  # the sampler's margin
    result = ch01.extreme_margins(X, y, w_star, scale=1e3)
    assert result["finite"] and result["warnings"] == 0
    assert 0 < result["loss_pos_min"] and result["loss_pos_max"] <= np.exp(-100 + 1e-6)
    assert result["linear_rel_error"] < 1e-14


@functools.lru_cache(maxsize=None)
def _run(seed, eta=1.0):
    X, y, _, _ = ch01.chapter_tasks(seed)
    return ch01.gd_separable(X, y, eta=eta, steps=20_000)


@functools.lru_cache(maxsize=None)
def _rates(seed):
    return ch01.gd_rates(_run(seed))


@pytest.mark.parametrize("seed", GD_SEEDS)
def test_gd_norm_grows_like_norm_mm_log_t(seed):
    rates = _rates(seed)
    assert rates["norms_increase"]
    assert np.all((0.6 < rates["slope_ratio"]) & (rates["slope_ratio"] < 1.05)), rates["slope_ratio"]
    assert 0.85 < rates["slope_ratio"].mean() < 1.0, rates["slope_ratio"].mean()
    mean_local = rates["local_slope"].mean(-1)  # (checkpoints - 1,)
    assert mean_local[-1] == mean_local.max() and 0.85 < mean_local[-1] < 1.0, mean_local[-1]


@pytest.mark.parametrize("seed", GD_SEEDS)
def test_gd_angle_shrinks_like_one_over_log_t(seed):
    rates = _rates(seed)
    assert rates["angle_decreases"]
    assert rates["angle_end"] > 0.03
    assert 0.5 < rates["angle_ratio"] < 0.9
    assert 0.7 < rates["angle_log_ratio"] < 1.3


@pytest.mark.parametrize("seed", GD_SEEDS)
def test_gd_loss_times_t(seed):
    scaled = _rates(seed)["loss_scaled"]  # mean over tasks of t eta L(w_t) / ||w_mm||^2, (checkpoints,)
    assert 0.85 < scaled[-1] < 1.05, scaled[-1]
    assert scaled[_rates(seed)["k_mid"]] < scaled[-1]


@pytest.mark.parametrize("seed", GD_SEEDS)
def test_gd_margin_and_stability(seed):
    rates = _rates(seed)
    assert rates["margin_ratio_end"] < 0.97
    assert rates["eta_beta_max"] < 1.0  # so eta = 2 (inline question 2) is below 2 / beta too


@pytest.mark.parametrize("seed", GD_SEEDS)
def test_doubling_the_step(seed):
    effect = ch01.step_size_effect(_run(seed), _run(seed, eta=2.0))
    assert 0.85 < effect["norm_rise_ratio"] < 1.1, effect
    assert 0.85 < effect["angle_factor"] < 0.97, effect
