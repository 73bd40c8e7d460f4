"""Chapter 03's asserted claims hold for every seed, not only the chapter's.

Bounds and the worst values measured while writing them (over 200 seeds unless said otherwise):
softmax Jacobian vs central differences < 1e-9 (worst 2.4e-10 over 1000 seeds), row sums, VJP and
sum of ds < 1e-14 (worst 2.8e-16 over 1000 seeds); the layer's gradients pass the package check
(worst 3.1e-3 of the tolerance) with absolute differences < 1e-7 (worst 6.5e-9); batch against loop
< 1e-13 (0 measured); naive against vectorised < 1e-13 (worst 9.9e-16 over 50 seeds); at W = 0,
|A - 1/n| < 1e-15 (0 measured) and |dW| > 0.01 |dV| (worst 0.157); identical keys |dW|/|dV| < 1e-12
(worst 2.7e-15); h = 1e-2 and h = 1e-11 fail the check on every seed (best 8.3 and 24.6 times the
tolerance over 20 seeds). Timings are not tested here: they belong to benchmarks/.
"""

import numpy as np
import pytest

from ngdformer.experiments import ch03 as ex

SEEDS = range(20)


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_jacobian(seed):
    err = ex.softmax_jacobian_errors(seed)
    assert err["jacobian"] < 1e-9
    assert max(err["row_sums"], err["vjp"], err["ds_sum"]) < 1e-14


@pytest.mark.parametrize("seed", SEEDS)
def test_layer_gradients_pass_the_check(seed):
    errors = ex.layer_gradient_errors(seed)
    assert all(ratio <= 1 for _, ratio in errors.values())
    assert max(a for a, _ in errors.values()) < 1e-7


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("h", [1e-2, 1e-11])
def test_bad_finite_difference_steps_fail(seed, h):
    """The break-it prompt: too large a step (truncation) and too small a step (round-off) both fail."""
    errors = ex.layer_gradient_errors(seed, h=h)
    assert max(ratio for _, ratio in errors.values()) > 1


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_equals_loop(seed):
    assert max(ex.batch_sum_error(seed).values()) < 1e-13


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_attention_still_moves_W(seed):
    sweep = ex.score_scale_sweep(seed, (0.0, 1.0))
    assert sweep["uniform_gap"][0] < 1e-15
    assert sweep["dW"][0] > 1e-2 * sweep["dV"][0]
    assert ex.identical_keys_dW(seed) < 1e-12


def test_saturation_shrinks_dW_on_average():
    """The break-it prompt: at c = 1000 the softmax saturates and |dW| collapses on most seeds (not on near-ties)."""
    sweeps = [ex.score_scale_sweep(seed, (1.0, 1000.0)) for seed in range(40)]
    dW = np.array([s["dW"] for s in sweeps])  # (40, 2)
    dV = np.array([s["dV"] for s in sweeps])
    assert np.median(dW[:, 1] / dW[:, 0]) < 1e-6  # 98% of 200 seeds below 1e-6, the worst 0.12
    assert np.all(dW[:, 1] <= 1.5 * dW[:, 0])
    assert np.all((dV[:, 1] > 0.25 * dV[:, 0]) & (dV[:, 1] < 4 * dV[:, 0]))  # measured 0.70 to 2.5
    assert all(s["max_A"][1] > 0.99 for s in sweeps)


@pytest.mark.parametrize("seed", range(5))
def test_naive_equals_vectorised(seed):
    assert ex.naive_vs_vectorised(seed) < 1e-13


def test_tiny_problem_is_deterministic():
    a, b = ex.tiny_problem(7), ex.tiny_problem(7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert [x.shape for x in a] == [(4, 4), (4, 4), (4, 4), (4, 4)]
