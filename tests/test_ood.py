"""Out-of-distribution evaluation: exact on the construction, real drift elsewhere, a readable table."""

import numpy as np
import pytest

from ngdformer import embed, looped_forward, ngd_weights, read_weights, sample_tasks
from ngdformer.ood import (Shift, anisotropic_cov, default_depths, default_shifts, evaluate_ood, format_ood_table,
                           transformer_iterates)
from ngdformer.tour import format_table

SMALL = dict(n=10, depth=30, batch=8, n_test=50)


@pytest.fixture(scope="module")
def construction_results():
    W, V = ngd_weights(3, 0.25)
    shifts = default_shifts(10, 3, depth=30, long_depth=60)
    return evaluate_ood(np.random.default_rng(0), W, V, eta=0.25, shifts=shifts, **SMALL)


def test_construction_matches_ngd_at_round_off_under_every_shift(construction_results):
    assert len(construction_results) == 8
    for name, t in construction_results.items():
        assert np.all(t["diff_max"] < 1e-12), name
        assert np.all(t["rel_max"] < 1e-12), name
        np.testing.assert_allclose(t["cos_tf"], t["cos_ngd"], atol=1e-12)
        np.testing.assert_array_equal(t["acc_tf"], t["acc_ngd"])


def test_result_layout(construction_results):
    for name, t in construction_results.items():
        assert t["depth"][0] == 0 and t["depth"][-1] == (60 if name == "depth 60" else 30)
        K = len(t["depth"])
        for key in ("diff", "diff_max", "rel", "rel_max", "cos_tf", "cos_ngd", "cos_gd", "margin_tf", "acc_gd"):
            assert t[key].shape == (K,), (name, key)
    assert construction_results["depth 60"]["depth"][-1] == 60
    assert construction_results["n = 20"]["n"] == 20 and construction_results["n = 5"]["n"] == 5
    assert construction_results["|w0| x10"]["sigma0"] == 10.0
    assert np.all(np.isnan(construction_results["10% label noise"]["margin_tf"]))
    t = construction_results["in distribution"]
    assert np.all(np.isfinite(t["margin_tf"])) and np.all(t["margin_ngd"] <= 1.0 + 1e-9)
    assert t["cos_ngd"][-1] > 0.7 and t["acc_ngd"][-1] > 0.7


def test_table_has_one_row_per_shift_and_the_tour_formatter_reads_curves(construction_results):
    text = format_ood_table(construction_results)
    assert len(text.splitlines()) == 2 + len(construction_results)
    for name in construction_results:
        assert name in text
    assert "nan / nan" in text  # the label-noise margin fraction is undefined, and says so
    assert len(format_table(construction_results["in distribution"]).splitlines()) == 2 + len(
        construction_results["in distribution"]["depth"])


def test_transformer_iterates_use_the_full_layer_when_the_context_is_not_inert():
    rng = np.random.default_rng(1)
    X, y, _ = sample_tasks(rng, 4, 6, 2)
    w0 = rng.standard_normal((4, 2))
    W, V = ngd_weights(2, 0.5)
    V_bad = V + 0.3 * np.eye(4)  # V22 != 0: context bottoms are read and rewritten
    for Wt, Vt in ((W, V), (W, V_bad)):
        u = transformer_iterates(Wt, Vt, X, y, w0, [0, 1, 4])
        for k, depth in enumerate([0, 1, 4]):
            np.testing.assert_allclose(u[k], read_weights(looped_forward(embed(X, y, w0), Wt, Vt, 6, depth)),
                                       rtol=1e-13, atol=1e-13)


def test_drifting_layer_shows_real_differences():
    W, V = ngd_weights(3, 0.25)
    V = V.copy()
    V[3:, 3:] = 0.2 * np.eye(3)  # an unexcited block, as left by a random start
    res = evaluate_ood(np.random.default_rng(2), W, V, eta=0.25, shifts=[Shift("in distribution")], **SMALL)
    assert res["in distribution"]["diff"][-1] > 1e-2


def test_deterministic_and_helpers():
    W, V = ngd_weights(2, 0.3)
    kw = dict(eta=0.3, n=6, depth=5, batch=3, n_test=10, shifts=[Shift("a"), Shift("b", n=4, margin=0.2)])
    a = evaluate_ood(np.random.default_rng(5), W, V, **kw)
    b = evaluate_ood(np.random.default_rng(5), W, V, **kw)
    for name in a:
        for key in ("diff", "cos_tf", "acc_gd"):
            np.testing.assert_array_equal(a[name][key], b[name][key])
    np.testing.assert_array_equal(default_depths(10, count=4), [0, 1, 2, 5, 10])
    np.testing.assert_array_equal(default_depths(0), [0])
    cov = anisotropic_cov(4, 100.0)
    assert np.linalg.cond(cov) == pytest.approx(100.0)


def test_bad_arguments():
    W, V = ngd_weights(2, 0.3)
    with pytest.raises(ValueError, match="eta"):
        evaluate_ood(np.random.default_rng(0), W, V, eta=0.0, n=5, depth=3)
    with pytest.raises(ValueError, match="depth"):
        evaluate_ood(np.random.default_rng(0), W, V, eta=0.3, n=5, depth=-1)
    with pytest.raises(ValueError, match="condition"):
        anisotropic_cov(3, -1.0)
