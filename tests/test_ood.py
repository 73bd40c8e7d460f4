"""Out-of-distribution evaluation: exact on the construction, real drift elsewhere, a readable table."""

import numpy as np
import pytest

from ngdformer import embed, looped_forward, ngd_weights, read_weights, sample_tasks
from ngdformer.ood import (Shift, anisotropic_cov, default_depths, default_shifts, evaluate_ood, evaluate_shift,
                           format_ood_table, transformer_iterates)
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


# --- every argument and every field of every shift is checked before anything runs -------------------------

KW = dict(eta=0.3, n=6, depth=5, batch=3, n_test=10)


@pytest.mark.parametrize("shift, match", [
    (Shift("a", n=0), r"shifts\[0\]\.n must be finite and > 0, got 0"),
    (Shift("a", n=2.5), r"shifts\[0\]\.n must be an integer, got 2\.5"),
    (Shift("a", n=True), r"shifts\[0\]\.n must be an integer, got True"),
    (Shift("a", depth=0.0), r"shifts\[0\]\.depth must be an integer, got 0\.0"),
    (Shift("a", depth=-1), r"shifts\[0\]\.depth must be finite and >= 0, got -1"),
    (Shift("a", depth=2.5), r"shifts\[0\]\.depth must be an integer"),
    (Shift("a", depth=10**12), r"shifts\[0\]\.depth = 1000000000000 is too large: the limit is 1000000"),
    (Shift("a", sigma0=-1.0), r"shifts\[0\]\.sigma0 must be finite and >= 0"),
    (Shift("a", sigma0=np.nan), r"shifts\[0\]\.sigma0 must be finite"),
    (Shift("a", margin=-0.1), r"shifts\[0\]\.margin must be finite and >= 0"),
    (Shift("a", margin="0.3"), r"shifts\[0\]\.margin must be a real number"),
    (Shift("a", flip=1.0), r"shifts\[0\]\.flip must be in \[0, 1\), got 1\.0"),
    (Shift("a", flip=True), r"shifts\[0\]\.flip must be a real number, got True"),
    (Shift("a", cov=np.eye(3)), r"shifts\[0\]\.cov has shape \(3, 3\), expected \(2, 2\)"),
    (Shift("a", cov=np.array([[1.0, 0.5], [0.0, 1.0]])), r"shifts\[0\]\.cov must be symmetric"),
    (Shift("a", cov=-np.eye(2)), r"shifts\[0\]\.cov must be positive semi-definite"),
    (Shift(""), r"shifts\[0\]\.name must be a non-empty str"),
    (Shift(None), r"shifts\[0\]\.name must be a non-empty str"),
    (("a", None), r"shifts\[0\] must be a Shift"),
])
def test_every_field_of_a_shift_is_checked_and_refused_not_replaced(shift, match):
    W, V = ngd_weights(2, 0.3)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(ValueError, match=match):
        evaluate_ood(rng, W, V, shifts=[shift], **KW)
    assert rng.bit_generator.state == state  # refused before any draw
    with pytest.raises(ValueError, match=match.replace(r"shifts\[0\]", "shift")):
        evaluate_shift(rng, W, V, shift, **KW)


def test_a_bad_shift_late_in_the_list_stops_the_run_before_the_first():
    W, V = ngd_weights(2, 0.3)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(ValueError, match=r"shifts\[2\]\.depth must be finite and >= 0, got -3"):
        evaluate_ood(rng, W, V, shifts=[Shift("a"), Shift("b", n=4), Shift("c", depth=-3)], **KW)
    assert rng.bit_generator.state == state  # no shift was evaluated
    with pytest.raises(ValueError, match=r"shifts\[1\] repeats the name 'a'"):
        evaluate_ood(rng, W, V, shifts=[Shift("a"), Shift("a", n=4)], **KW)


@pytest.mark.parametrize("depths, match", [
    ([0, 1.5, 2.7], r"depths must be integers .*float64"),
    (np.array([0.0, 5.0]), r"depths must be integers"),
    ([True, False], r"depths must be integers .*bool"),
    ([0, -1, 5], r"depths must lie in \[0, 1000000\].*found -1"),
    ([0, 10**7], r"depths must lie in \[0, 1000000\].*found 10000000"),
    ([5, 1], r"depths must be increasing"),
    ([], r"depths must be a non-empty 1-D sequence"),
    ([[0, 5]], r"depths must be a non-empty 1-D sequence"),
    ([0, 1, 3], r"depths ends at 3 but shifts\[0\] \('a'\) runs depth 5"),
])
def test_depths_are_integers_that_end_at_the_depth_run(depths, match):
    W, V = ngd_weights(2, 0.3)
    with pytest.raises(ValueError, match=match):
        evaluate_ood(np.random.default_rng(0), W, V, shifts=[Shift("a")], depths=depths, **KW)


def test_depths_given_with_a_deeper_shift_must_end_at_its_depth():
    W, V = ngd_weights(2, 0.3)
    shifts = [Shift("a"), Shift("deeper", depth=8)]
    with pytest.raises(ValueError, match=r"depths ends at 5 but shifts\[1\] \('deeper'\) runs depth 8"):
        evaluate_ood(np.random.default_rng(0), W, V, shifts=shifts, depths=[0, 2, 5], **KW)
    res = evaluate_ood(np.random.default_rng(0), W, V, shifts=shifts, **KW)
    assert res["deeper"]["depth"][-1] == 8 and res["a"]["depth"][-1] == 5


@pytest.mark.parametrize("change, match", [
    ({"rng": None}, r"rng must be a numpy\.random\.Generator"),
    ({"rng": np.random}, r"rng must be a numpy\.random\.Generator"),
    ({"W": np.zeros((3, 3)), "V": np.zeros((3, 3))}, r"W must have shape \(D, D\) with D = 2d even"),
    ({"V": np.zeros((6, 6))}, r"V has shape \(6, 6\), expected \(4, 4\)"),
    ({"W": np.full((4, 4), np.nan)}, r"W contains a non-finite value"),
    ({"eta": True}, r"eta must be a real number"),
    ({"eta_gd": 0.0}, r"eta_gd must be finite and > 0"),
    ({"n": 0}, r"n must be finite and > 0"),
    ({"depth": 2.0}, r"depth must be an integer"),
    ({"batch": 0}, r"batch must be finite and > 0"),
    ({"n_test": 1.5}, r"n_test must be an integer"),
    ({"sigma0": -1.0}, r"sigma0 must be finite and >= 0"),
    ({"shifts": Shift("a")}, r"shifts must be a list of Shift"),
    ({"shifts": "in distribution"}, r"shifts must be a list of Shift"),
    ({"batch": 10**12}, r"X of shifts\[0\] would have shape .*the limit is 268435456"),
    ({"n_test": 10**12}, r"held-out points .* of shifts\[0\] would have shape .*the limit is 268435456"),
])
def test_evaluate_ood_checks_every_argument(change, match):
    W, V = ngd_weights(2, 0.3)
    args = dict(rng=np.random.default_rng(0), W=W, V=V, shifts=[Shift("a")], **KW) | change
    with pytest.raises(ValueError, match=match):
        evaluate_ood(args.pop("rng"), args.pop("W"), args.pop("V"), **args)


def test_trajectories_beyond_the_memory_limit_are_refused():
    W, V = ngd_weights(2, 0.3)
    with pytest.raises(ValueError, match=r"trajectories \(depth \+ 1, batch, d\) of shifts\[0\] would have shape "
                                         r"\(1000001, 1000, 2\)"):
        evaluate_ood(np.random.default_rng(0), W, V, shifts=[Shift("a", depth=10**6)], **KW | {"batch": 1000})


def test_helpers_check_their_arguments():
    rng = np.random.default_rng(0)
    X, y, _ = sample_tasks(rng, 2, 4, 2)
    W, V = ngd_weights(2, 0.3)
    for call, match in ((lambda: default_depths(-1), "depth must be finite and >= 0"),
                        (lambda: default_depths(2.5), "depth must be an integer"),
                        (lambda: default_depths(10, count=0), "count must be finite and > 0"),
                        (lambda: default_shifts(0, 3, depth=5), "n must be finite and > 0"),
                        (lambda: default_shifts(10, 3, depth=5, long_depth=-2), "long_depth must be finite and >= 0"),
                        (lambda: default_shifts(10, 3, depth=5, sigma0=np.inf), "sigma0 must be finite"),
                        (lambda: anisotropic_cov(2.5), "d must be an integer"),
                        (lambda: anisotropic_cov(0), "d must be finite and > 0"),
                        (lambda: anisotropic_cov(10**5), r"cov would have shape \(100000, 100000\)"),
                        (lambda: anisotropic_cov(3, 0.5), r"condition must be >= 1"),
                        (lambda: transformer_iterates(W, V, X, y, y[..., :2], [0, 1.5]), "depths must be integers"),
                        (lambda: transformer_iterates(W, V, X, y, y[..., :2], [3, 1]), "depths must be increasing"),
                        (lambda: format_ood_table({"a": {}}), r"results\['a'\] lacks \['depth'"),
                        (lambda: format_ood_table([1, 2]), "results must be the dict evaluate_ood returns")):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(default_depths(3, count=1), [0, 1])
