r"""Chapter 02's experiments (normalized gradient descent) whose outcomes the chapter asserts.

Each function draws its own tasks from the generator it is given (``nf.sample_tasks``),
runs one experiment and returns plain arrays in a NamedTuple; nothing is printed. The
chapter prints what they return; ``tests/test_experiments_ch02.py`` checks every claim
the chapter makes about them on many seeds.

- :func:`log_loss_gradient_check`: the NGD direction is minus the gradient of :math:`\log\mathcal L`.
- :func:`step_lengths`: NGD and GD steps along the ray :math:`s\, u_{mm}`: the NGD step
  keeps its length at every scale, GD's vanishes, the literal :math:`\nabla\mathcal L / \mathcal L` breaks.
- :func:`logistic_vs_softmax`: the logistic NGD weights against the softmax along the ray
  :math:`\mu\, w_{mm}` whose smallest margin is :math:`\mu`.
- :func:`margin_race`: the relative margin gap of GD and NGD from :math:`w_0 = 0`.
- :func:`nudge_amplification`: how much the NGD map amplifies a tiny change of :math:`w_0`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..gradcheck import check_directions
from ..losses import exp_log_loss, exp_loss, exp_loss_grad, ngd_coefficients
from ..metrics import relative_difference
from ..solvers import gd, gd_step, kkt_residuals, max_margin_dual, ngd, ngd_step, normalized_margin
from ..tasks import sample_tasks


def log_loss_gradient_check(X, y, w, rng: np.random.Generator, directions: int = 5) -> tuple[np.ndarray, np.ndarray]:
    r"""Check :math:`\nabla\log\mathcal L(w) = -\sum_i p_i y_i x_i` on every task with the package's gradient checker.

    The analytic gradient is minus the NGD direction, read off :func:`ngdformer.ngd_step` with
    :math:`\eta = 1`; :func:`ngdformer.check_directions` compares it with central differences of
    :func:`ngdformer.exp_log_loss` along ``directions`` random unit directions per task.

    Parameters
    ----------
    X : ndarray of shape (B, n, d), the inputs.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w : ndarray of shape (B, d), the points at which the gradient is checked.
    rng : np.random.Generator, draws the directions.
    directions : int, the number of random directions per task.

    Returns
    -------
    num, ana : ndarrays of shape (B, directions), the numeric and analytic directional derivatives.
    """
    direction = ngd_step(w, X, y, 1.0) - w  # (B, d) sum_i p_i y_i x_i
    num, ana = np.empty((2, w.shape[0], directions))
    for b in range(w.shape[0]):
        num[b], ana[b] = check_directions(lambda v: float(exp_log_loss(v, X[b], y[b])), w[b], -direction[b], rng,
                                          directions=directions)
    return num, ana


class StepLengths(NamedTuple):
    """Result of :func:`step_lengths`; S scales, B tasks."""

    scales: np.ndarray  #: (S,) the scales s of w = s u_mm
    ngd: np.ndarray  #: (S, B) length of the NGD step (exponential loss) at s u_mm
    gd: np.ndarray  #: (S, B) length of the GD step (exponential loss) at s u_mm
    literal_nan: np.ndarray  #: (S, B) bool, w - eta grad L / L computed literally is NaN
    gamma_mm: np.ndarray  #: (B,) max-margin value of each task
    x_max: np.ndarray  #: (B,) largest |x_i| of each task


def step_lengths(rng: np.random.Generator, B: int = 16, n: int = 20, d: int = 5, *, eta: float = 0.5,
                 scales=(0.0, 1.0, 10.0, 100.0, 1e4), margin: float = 0.1) -> StepLengths:
    r"""Lengths of one NGD and one GD step at :math:`w = s\,u_{mm}` for growing scales s.

    The NGD step is :math:`\eta\sum_i p_i y_i x_i`, a convex combination, so its length lies in
    :math:`[\eta\gamma_{mm}, \eta\max_i\|x_i\|]` at every scale; the GD step
    :math:`-\eta\nabla\mathcal L` shrinks like :math:`e^{-s\gamma_{mm}}`. The literal form
    :math:`w - \eta\nabla\mathcal L/\mathcal L` is also computed: it is 0/0 (NaN) once every
    :math:`e^{-m_i}` underflows.

    Parameters
    ----------
    rng : np.random.Generator, draws the B tasks.
    B, n, d : int, number of tasks, context size, input dimension.
    eta : float > 0, the step size of both methods.
    scales : sequence of S floats >= 0, the scales s.
    margin : float >= 0, the minimum margin of the sampled tasks (see ``nf.sample_tasks``).

    Returns
    -------
    StepLengths
        ``scales`` (S,), ``ngd`` and ``gd`` (S, B), ``literal_nan`` (S, B) bool,
        ``gamma_mm`` and ``x_max`` (B,).
    """
    X, y, _ = sample_tasks(rng, B, n, d, margin=margin)
    w_mm = max_margin_dual(X, y).w  # (B, d)
    u_mm = w_mm / np.linalg.norm(w_mm, axis=-1, keepdims=True)
    scales = np.asarray(scales, dtype=float)
    w = scales[:, None, None] * u_mm  # (S, B, d)
    ngd_len = np.linalg.norm(ngd_step(w, X, y, eta) - w, axis=-1)  # (S, B)
    gd_len = np.linalg.norm(gd_step(w, X, y, eta, loss="exp") - w, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):  # the literal form is 0/0 at large scales
        literal = w - eta * exp_loss_grad(w, X, y) / exp_loss(w, X, y)[..., None]
    return StepLengths(scales, ngd_len, gd_len, np.isnan(literal).any(-1), 1.0 / np.linalg.norm(w_mm, axis=-1),
                       np.linalg.norm(X, axis=-1).max(-1))


class LogisticVsSoftmax(NamedTuple):
    """Result of :func:`logistic_vs_softmax`; S points on the ray, B tasks."""

    mu: np.ndarray  #: (S,) smallest margin along the ray w = mu w_mm
    l1: np.ndarray  #: (S, B) sum_i |c_i - p_i|, logistic weights c against the softmax p
    mass: np.ndarray  #: (S, B) |sum_i c_i - 1|
    total_at_zero: np.ndarray  #: (B,) sum_i c_i at w = 0


def logistic_vs_softmax(rng: np.random.Generator, B: int = 16, n: int = 20, d: int = 5, *, mu=None,
                        margin: float = 0.1) -> LogisticVsSoftmax:
    r"""Distance of the logistic NGD weights from the softmax along :math:`w = \mu\, w_{mm}`.

    With :math:`c_i = \sigma(-m_i)/\sum_j\log(1+e^{-m_j})` and :math:`p = \mathrm{softmax}(-m)`,
    every margin on the ray is at least :math:`\mu` (the support vectors' margin is exactly
    :math:`\mu`), and for :math:`\mu \ge 0`

    .. math:: \sum_i |c_i - p_i| \le e^{-\min_i m_i} = e^{-\mu}.

    Parameters
    ----------
    rng : np.random.Generator, draws the B tasks.
    B, n, d : int, number of tasks, context size, input dimension.
    mu : ndarray of shape (S,), smallest margins; default 60 points from 1e-3 to 40, log-spaced.
    margin : float >= 0, the minimum margin of the sampled tasks.

    Returns
    -------
    LogisticVsSoftmax
        ``mu`` (S,), ``l1`` and ``mass`` (S, B), ``total_at_zero`` (B,).
    """
    X, y, _ = sample_tasks(rng, B, n, d, margin=margin)
    w_mm = max_margin_dual(X, y).w  # (B, d), smallest margin exactly 1
    mu = np.geomspace(1e-3, 40.0, 60) if mu is None else np.asarray(mu, dtype=float)
    ray = mu[:, None, None] * w_mm  # (S, B, d)
    c = ngd_coefficients(ray, X, y, loss="logistic")  # (S, B, n)
    p = ngd_coefficients(ray, X, y, loss="exp")
    total = ngd_coefficients(np.zeros((B, d)), X, y, loss="logistic").sum(-1)
    return LogisticVsSoftmax(mu, np.abs(c - p).sum(-1), np.abs(c.sum(-1) - 1.0), total)


class MarginRace(NamedTuple):
    """Result of :func:`margin_race`; K checkpoints, B tasks."""

    t: np.ndarray  #: (K,) checkpoints (steps), log-spaced from 1 to ``steps``, with 100 and 1000 included
    gap: dict  #: label -> (K, B) relative margin gap (gamma_mm - gamma(w_t)) / gamma_mm
    slope: dict  #: label -> float, log-log slope of the mean gap from t = 1000 to ``steps``
    excess: dict  #: label -> float, largest gamma(w_t) - gamma_mm over all t and tasks (<= round-off)
    gamma_mm: np.ndarray  #: (B,) max-margin values
    gap_bound: np.ndarray  #: (B,) 1 + max_i |x_i| / gamma_mm, the largest gap possible
    kkt: float  #: largest KKT residual of the max-margin solutions


def margin_race(rng: np.random.Generator, B: int = 16, n: int = 20, d: int = 5, *, steps: int = 5000,
                gd_eta: float = 1.0, ngd_etas=(1.0, 0.1), margin: float = 0.1, checkpoints: int = 40) -> MarginRace:
    r"""GD on the logistic loss against NGD on the exponential loss, from :math:`w_0 = 0`.

    Tracks the relative margin gap :math:`(\gamma_{mm} - \gamma(w_t))/\gamma_{mm}`, which is
    :math:`\ge 0` and, by Cauchy-Schwarz (:math:`m_i \ge -\|w\|\|x_i\|`), at most
    :math:`1 + \max_i\|x_i\|/\gamma_{mm}`.

    Parameters
    ----------
    rng : np.random.Generator, draws the B tasks.
    B, n, d : int, number of tasks, context size, input dimension.
    steps : int > 1000, the number of steps of every run.
    gd_eta : float > 0, the step size of GD.
    ngd_etas : sequence of floats > 0, one NGD run per step size.
    margin : float >= 0, the minimum margin of the sampled tasks.
    checkpoints : int, the number of log-spaced checkpoints (before 100, 1000, ``steps`` are added).

    Returns
    -------
    MarginRace
        labels ``"GD (logistic, eta = 1)"``, ``"NGD (eta = 1)"``, ... (``eta`` printed with ``:g``);
        ``t`` (K,), ``gap[label]`` (K, B), ``slope[label]`` and ``excess[label]`` floats,
        ``gamma_mm`` and ``gap_bound`` (B,), ``kkt`` float.
    """
    if steps <= 1000:
        raise ValueError(f"steps must exceed 1000 (the slope is measured from t = 1000), got {steps}")
    X, y, _ = sample_tasks(rng, B, n, d, margin=margin)
    res = max_margin_dual(X, y)
    gamma_mm = normalized_margin(res.w, X, y)  # (B,)
    w0 = np.zeros((B, d))
    runs = {f"GD (logistic, eta = {gd_eta:g})": gd(w0, X, y, gd_eta, steps)}
    runs.update({f"NGD (eta = {e:g})": ngd(w0, X, y, e, steps) for e in ngd_etas})  # each (steps + 1, B, d)
    t = np.unique(np.r_[np.round(np.geomspace(1, steps, checkpoints)).astype(int), 100, 1000, steps])
    gap, slope, excess = {}, {}, {}
    for label, traj in runs.items():
        gamma = normalized_margin(traj[1:], X, y)  # (steps, B), gamma(w_t) for t = 1..steps
        gap[label] = (gamma_mm - gamma[t - 1]) / gamma_mm  # (K, B)
        mean = gap[label].mean(-1)
        slope[label] = float(np.log(mean[t == 1000][0] / mean[-1]) / np.log(steps / 1000))
        excess[label] = float((gamma - gamma_mm).max())
    kkt = max(float(v.max()) for v in kkt_residuals(res.w, X, y, res.a).values())
    return MarginRace(t, gap, slope, excess, gamma_mm, 1.0 + np.linalg.norm(X, axis=-1).max(-1) / gamma_mm, kkt)


class Nudge(NamedTuple):
    """Result of :func:`nudge_amplification`; B tasks."""

    relative: dict  #: eta -> (steps, B) |w'_t - w_t| / |w_t| after each step t = 1..steps
    absolute: dict  #: eta -> (steps, B) |w'_t - w_t|
    nudge: np.ndarray  #: (B,) |w'_0 - w_0|, the size of the nudge


def nudge_amplification(rng: np.random.Generator, B: int = 64, n: int = 40, d: int = 10, *, steps: int = 200,
                        etas=(1.0, 0.25, 0.1), size: float = 1e-13) -> Nudge:
    r"""Run NGD twice, from :math:`w_0 = 0` and from a nudged :math:`w_0' = \delta`, and compare.

    Both runs use the same code, so any difference is the nudge :math:`\delta` (entries
    ``size`` times standard normals) carried, amplified or damped, by the NGD map itself.

    Parameters
    ----------
    rng : np.random.Generator, draws the B tasks (no minimum margin) and the nudge.
    B, n, d : int, number of tasks, context size, input dimension.
    steps : int, the number of NGD steps.
    etas : sequence of floats > 0, the step sizes to compare.
    size : float, the scale of the nudge.

    Returns
    -------
    Nudge
        ``relative[eta]`` and ``absolute[eta]`` of shape (steps, B); ``nudge`` (B,).
    """
    X, y, _ = sample_tasks(rng, B, n, d)
    delta = size * rng.standard_normal((B, d))
    relative, absolute = {}, {}
    for eta in etas:
        ref = ngd(np.zeros((B, d)), X, y, eta, steps)  # (steps + 1, B, d)
        nudged = ngd(delta, X, y, eta, steps)
        relative[eta] = relative_difference(nudged[1:], ref[1:])  # (steps, B)
        absolute[eta] = np.linalg.norm(nudged[1:] - ref[1:], axis=-1)
    return Nudge(relative, absolute, np.linalg.norm(delta, axis=-1))
