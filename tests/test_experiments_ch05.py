"""Chapter 05's asserted claims, on many seeds (``ngdformer.experiments.ch05``).

The bounds have headroom over the worst values measured while writing the chapter (100
seeds each unless noted; the worst value is in the comment beside each bound).
"""

import numpy as np
import pytest

import ngdformer.experiments.ch05 as ex

SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_stack_and_loop_are_ngd_to_round_off(seed):
    err_stack, err_loop = ex.stack_and_loop(np.random.default_rng(seed))
    assert err_stack < 1e-12  # worst 3.0e-15
    assert err_loop < 1e-12  # worst 4.6e-16


@pytest.mark.parametrize("seed", SEEDS)
def test_depth_is_not_a_step_size_knob(seed):
    assert ex.one_long_step(np.random.default_rng(seed)) > 0.1  # smallest 0.74


def test_one_long_step_equals_the_stack_with_one_example():
    """The model answer's special case: with n = 1 the weights p never change."""
    assert ex.one_long_step(np.random.default_rng(0), n=1) < 1e-14


@pytest.mark.parametrize("seed", SEEDS)
def test_amplification(seed):
    amp = ex.amplification(np.random.default_rng(seed))
    loop_err, nudge_err, drift = amp["loop_err"], amp["nudge_err"], amp["drift"]
    # eta = 0.1 contracts (200 seeds): errors worst 4.0e-16 and 1.7e-14; last drift worst 2.2e-14,
    # always largest at step 1
    assert loop_err[0.1] < 1e-12 and nudge_err[0.1] < 1e-12
    assert drift[0.1].argmax() == 0 and drift[0.1][-1] < 1e-13
    # eta = 1 amplifies: smallest errors 1.2e-2 and 1.4e-2, their ratio in [0.34, 2.2], drift growth at least 5.0e10
    assert loop_err[1.0] > 1e-3 and nudge_err[1.0] > 1e-3
    assert 0.1 < loop_err[1.0] / nudge_err[1.0] < 10
    assert drift[1.0][-1] > 1e9 * drift[1.0][0]
    assert all(drift[e].shape == (200,) for e in (0.1, 0.25, 0.5, 1.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_separators_over_depth(seed):
    sep = ex.separators_over_depth(np.random.default_rng(seed))
    assert sep["err"] < 1e-12  # worst 3.0e-16
    assert sep["fraction"][0] < 0  # largest -8.1: the start misclassifies context points
    assert sep["cosine"][-1] > sep["cosine"][0] and sep["cosine"][-1] > 0.95  # smallest 0.985
    assert sep["w"].shape == (6, 2) and sep["X"].shape == (30, 2)


@pytest.mark.parametrize("seed", range(5))
def test_margin_convergence(seed):
    marks = [20, 100, 1000, 2000]
    conv = ex.margin_convergence(np.random.default_rng(seed), record=marks)
    mean = {e: f.mean(-1) for e, f in conv["fraction"].items()}
    gd = conv["gd"].mean(-1)
    assert mean[0.25][-1] > 0.94  # smallest 0.961
    assert mean[1.0][-1] > 0.975  # smallest 0.985
    for e in (0.25, 1.0):
        assert np.all(np.diff(1 - mean[e]) < 0)  # largest step -0.0062
        assert np.all(mean[e] > gd)  # smallest lead 0.058


def test_margin_convergence_records_every_depth_by_default():
    conv = ex.margin_convergence(np.random.default_rng(0), batch=3, depth=5)
    assert conv["gd"].shape == (6, 3) and np.array_equal(conv["depths"], np.arange(6))
