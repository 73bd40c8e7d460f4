"""Chapter 04's asserted claims, each on several seeds (ngdformer.experiments.ch04).

The bounds carry headroom over the worst value measured on 40 seeds (25 for the sweep,
30 for the depth runs), noted beside each assert.
"""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.experiments import ch04 as ex

SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_layer_is_one_ngd_step(seed):
    r = ex.one_step_identity(np.random.default_rng(seed))
    assert r.err_p < 1e-12  # worst measured 1.5e-15
    assert r.err_w < 1e-12  # worst measured 8.7e-16


@pytest.mark.parametrize("seed", range(5))
def test_identity_holds_over_the_sweep(seed):
    err = ex.identity_sweep(np.random.default_rng(seed))
    assert err.shape == (3, 3, 3, 3)
    assert err.max() < 1e-12  # worst measured 3.6e-15


@pytest.mark.parametrize("seed", SEEDS)
def test_self_attending_layer_is_gd_on_the_sink_loss(seed):
    r = ex.sink_identity(np.random.default_rng(seed))
    assert r.err_sink < 1e-12  # worst measured 5.6e-16
    assert r.err_shrink < 1e-12  # worst measured 1.9e-15
    assert np.all((r.share > 0) & (r.share < 1))
    assert r.gap > 0
    assert r.grad_ratio < 0.05  # the check passes at 1; worst measured 4.6e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_context_columns_run_ngd_and_are_never_read(seed):
    r = ex.context_columns(np.random.default_rng(seed))
    assert r.top_change == 0.0  # V* has zero top rows: exactly 0
    assert r.err_bottom_1 < 1e-13  # worst measured 7.6e-16
    assert r.err_bottom_L < 1e-12  # worst measured 3.8e-16
    assert r.query_change == 0.0  # the scrambled halves are multiplied by exact zeros
    assert r.inert


@pytest.mark.parametrize("seed", SEEDS)
def test_w22_is_invisible_unless_the_context_bottoms_differ(seed):
    r = ex.w22_effect(np.random.default_rng(seed))
    assert r.one_layer == 0.0  # W22 w meets the keys' zero bottom halves
    assert r.looped < 1e-12  # a score shift equal for every key; worst measured 2.6e-16
    assert r.looped_scrambled > 1e-2  # worst measured 0.16


@pytest.mark.parametrize("seed", SEEDS)
def test_sink_slows_the_loop_down(seed):
    r = ex.sink_over_depth(np.random.default_rng(seed))
    masked, sink, share = r.norm_masked.mean(axis=1), r.norm_sink.mean(axis=1), r.share.mean(axis=1)
    assert masked.shape == sink.shape == share.shape == (201,)
    assert 0.75 < ex.growth_ratio(masked) < 1.1  # linear growth; measured 0.86 .. 0.89
    assert ex.growth_ratio(sink) < 0.5  # like log L; worst measured 0.28
    assert masked[-1] > 1.5 * sink[-1]  # worst measured ratio 2.5
    assert share[-1] > 0.5  # worst measured 0.84


def test_growth_ratio():
    L = np.arange(201.0)
    assert ex.growth_ratio(3 * L) == pytest.approx(1.0)
    assert ex.growth_ratio(np.log1p(L)) < 0.2


def test_sink_over_depth_matches_the_textbook_loop():
    """The fast query path used by sink_over_depth agrees with the full textbook layer, with and without the sink."""
    X, y, _ = nf.sample_tasks(np.random.default_rng(0), 4, 10, 3)
    W, V = nf.ngd_weights(3, 1.0)
    for attend_self in (False, True):
        fast = nf.looped_trajectory(nf.embed(X, y), W, V, 10, 30, attend_self=attend_self)[-1]
        slow = nf.read_weights(nf.looped_forward(nf.embed(X, y), W, V, 10, 30, attend_self=attend_self))
        assert nf.rel_error(fast, slow) < 1e-12
