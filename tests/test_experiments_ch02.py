"""Chapter 02's asserted claims, on many seeds (the chapter itself runs one).

Each bound below is the chapter's; the comment beside it gives the worst value measured
while developing (over the number of seeds named there), so the headroom is visible.
"""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.experiments import ch02 as experiments

SEEDS = range(10)


@pytest.mark.parametrize("seed", SEEDS)
def test_code_section_identities(seed):
    """The code section's checks: p is the softmax, the step is the literal division, the gradient check passes."""
    rng = np.random.default_rng(seed)
    B, n, d, eta = 16, 20, 5, 0.5
    X, y, _ = nf.sample_tasks(rng, B, n, d, margin=0.1)
    w = rng.standard_normal((B, d))
    p = nf.ngd_coefficients(w, X, y, loss="exp")
    assert nf.rel_error(p, nf.softmax(-nf.margins(w, X, y), axis=-1)) < 1e-12
    assert np.allclose(p.sum(-1), 1, rtol=0, atol=1e-14)
    for loss in ("exp", "logistic"):  # the losses NGD is defined for here
        f, g = nf.solvers.LOSSES[loss]
        assert nf.rel_error(nf.ngd_step(w, X, y, eta, loss=loss), w - eta * g(w, X, y) / f(w, X, y)[:, None]) < 1e-12
    num, ana = experiments.log_loss_gradient_check(X, y, w, rng, directions=5)
    assert num.shape == ana.shape == (B, 5)
    nf.assert_gradients_close(num, ana)
    assert max(nf.rel_error(num[b], ana[b]) for b in range(B)) < 1e-8  # worst 1.3e-9 over 30 seeds


@pytest.mark.parametrize("seed", SEEDS)
def test_step_lengths(seed):
    eta = 0.5
    r = experiments.step_lengths(np.random.default_rng(seed), eta=eta)
    assert r.ngd.shape == r.gd.shape == r.literal_nan.shape == (5, 16)
    assert np.all(r.ngd >= eta * r.gamma_mm * (1 - 1e-12)) and np.all(r.ngd <= eta * r.x_max * (1 + 1e-12))
    assert np.all(r.gd <= eta * r.x_max * np.exp(-r.scales[:, None] * r.gamma_mm) * (1 + 1e-12))
    assert r.literal_nan[-1].all()  # s = 1e4: every margin >= 1000


@pytest.mark.parametrize("seed", SEEDS)
def test_logistic_weights_become_the_softmax(seed):
    r = experiments.logistic_vs_softmax(np.random.default_rng(seed))
    assert np.allclose(r.total_at_zero, 1 / (2 * np.log(2)), rtol=1e-14)
    assert np.all(r.l1 <= np.exp(-r.mu)[:, None] + 1e-15)  # a theorem; l1 / e^-mu at most 0.53 over 40 seeds
    assert r.l1[r.mu > 30].max() < 1e-12
    share = r.mass[r.mu < 20] / r.l1[r.mu < 20]
    assert share.min() > 0.5  # smallest share 0.74 over 30 seeds


@pytest.fixture(scope="module", params=range(5))
def race(request):
    return experiments.margin_race(np.random.default_rng(request.param), steps=5000)


def test_margin_race_ngd_beats_gd(race):
    mean = {k: g.mean(-1) for k, g in race.gap.items()}
    ngd1, gd1 = mean["NGD (eta = 1)"], mean["GD (logistic, eta = 1)"]
    assert ngd1[-1] < 0.1 * gd1[-1]  # ratio at most 0.053 over 33 seeds
    assert np.all(ngd1[race.t >= 100] < gd1[race.t >= 100])  # ratio at most 0.54 over 33 seeds


def test_margin_race_rates(race):
    assert race.slope["NGD (eta = 1)"] > 0.6  # smallest 0.88 over 33 seeds
    assert race.slope["NGD (eta = 0.1)"] > 0.6  # smallest 0.78 over 33 seeds
    assert race.slope["GD (logistic, eta = 1)"] < 0.45  # largest 0.32 over 33 seeds


def test_margin_race_gap_range(race):
    assert max(race.excess.values()) <= 1e-12 and race.kkt < 1e-9
    assert all(np.all(g <= race.gap_bound) and np.all(g >= -1e-12) for g in race.gap.values())


def test_margin_race_needs_more_than_1000_steps():
    with pytest.raises(ValueError, match="exceed 1000"):
        experiments.margin_race(np.random.default_rng(0), steps=1000)


@pytest.mark.parametrize("seed", SEEDS)
def test_nudge_amplification(seed):
    r = experiments.nudge_amplification(np.random.default_rng(seed), 64, 40, 10, steps=200, etas=(1.0, 0.25, 0.1))
    half = 100
    assert r.relative[1.0][-1].max() > 1e-3  # smallest worst task 2.5e-2 over 30 seeds
    assert np.median(r.relative[1.0][-1]) < 1e-12  # largest median 3.9e-14 over 30 seeds
    assert r.relative[0.25][half:].max() < 1e-12  # largest 1.6e-14 over 30 seeds
    assert r.relative[0.1][half:].max() < 1e-12  # largest 3.7e-14 over 30 seeds
    for eta in (0.25, 0.1):  # the absolute difference never exceeds the nudge: at most 0.97 of it over 30 seeds
        assert (r.absolute[eta].max(0) / r.nudge).max() < 2
    assert r.relative[1.0][-1].max() > 1e9 * r.relative[0.1][-1].max()  # ratio at least 1.4e12 over 30 seeds


@pytest.mark.parametrize("seed", SEEDS)
def test_certificate_of_the_chapter(seed):
    """The KKT section: the solver's pair passes, (1.5 w_mm, a) fails as inline question 3 predicts."""
    X, y, w_star = nf.sample_tasks(np.random.default_rng(seed), 16, 20, 5, margin=0.1)
    res = nf.max_margin_dual(X, y)
    assert all(v.max() < 1e-9 for v in nf.kkt_residuals(res.w, X, y, res.a).values())
    gamma_mm = nf.normalized_margin(res.w, X, y)
    assert np.all(gamma_mm >= nf.normalized_margin(w_star, X, y) - 1e-12)
    assert nf.rel_error(gamma_mm, 1 / np.linalg.norm(res.w, axis=-1)) < 1e-12
    scaled = nf.kkt_residuals(1.5 * res.w, X, y, res.a)
    assert scaled["primal"].max() == 0 and scaled["dual"].max() == 0
    assert np.allclose(scaled["stationarity"], 1 / 3, atol=1e-9) and np.allclose(scaled["gap"], 10 / 9, atol=1e-9)
    assert np.allclose(scaled["slackness"], 0.5 * res.a.max(-1) / res.a.sum(-1), atol=1e-9)
