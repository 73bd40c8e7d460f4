r"""Chapter 01's experiments: the gradient check, extreme margins, and GD on separable data.

The chapter calls these functions and prints what they return; ``tests/test_experiments_ch01.py``
checks every claim the chapter makes about them on several seeds. Nothing here prints.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ..directions import angle
from ..gradcheck import check_directions, gradient_errors, rel_error
from ..losses import LOSSES, logistic_loss, logistic_loss_grad, margins
from ..solvers import gd, max_margin, normalized_margin
from ..tasks import sample_tasks


def chapter_tasks(seed: int, B: int = 16, n: int = 20, d: int = 5, margin: float = 0.1):
    r"""The chapter's data: ``B`` separable tasks and a random weight vector per task.

    .. math:: w^* \sim \mathrm{Unif}(S^{d-1}),\quad x_i \sim N(0, I_d),\quad
              y_i = \mathrm{sign}\langle w^*, x_i\rangle,\quad w \sim N(0, I_d)

    Points closer than ``margin`` to the separator are pushed out to distance ``margin``
    (see :func:`ngdformer.sample_tasks`), so every margin of ``w_star`` is at least ``margin``.

    Parameters
    ----------
    seed : int, seeds the one ``np.random.default_rng`` that draws everything.
    B, n, d : int, number of tasks, context size, input dimension.
    margin : float >= 0, the minimum distance of a point to the separator.

    Returns
    -------
    X : ndarray of shape (B, n, d), the inputs x_i (examples are rows).
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w_star : ndarray of shape (B, d), the task directions, unit rows.
    w : ndarray of shape (B, d), a random point at which to check gradients.
    """
    rng = np.random.default_rng(seed)
    X, y, w_star = sample_tasks(rng, B, n, d, margin=margin)
    return X, y, w_star, rng.standard_normal((B, d))


def gradient_check(X, y, w, rng: np.random.Generator, directions: int = 5) -> dict:
    r"""Check both hand-derived loss gradients on every task with the package's gradient checker.

    For each task b and each loss, :func:`ngdformer.check_directions` compares
    :math:`\langle \nabla\mathcal L(w_b), v\rangle` with :math:`(\mathcal L(w_b + hv) - \mathcal L(w_b - hv))/2h`
    along ``directions`` random unit directions v.

    Parameters
    ----------
    X : ndarray of shape (B, n, d), the inputs.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w : ndarray of shape (B, d), the points at which the gradients are checked.
    rng : np.random.Generator, draws the directions.
    directions : int, directions per task and loss.

    Returns
    -------
    result : dict with, for ``name`` in {"logistic", "exp"}:
        ``result[name]["rel_error"]`` float, the largest :func:`ngdformer.rel_error` of numeric
        against analytic derivatives over the tasks (each task's error is relative to its largest derivative);
        ``result[name]["tolerance_used"]`` float, the largest :func:`ngdformer.gradient_errors`
        (a check passes where it is <= 1);
        and ``result["min_margin"]``, ``result["max_exp_loss"]``, floats: the most negative margin
        of ``w`` and the largest exponential loss among the checked points.
    """
    result = {}
    for name in ("logistic", "exp"):
        loss, grad = LOSSES[name]
        errors, used = [], []
        for b in range(X.shape[0]):
            def f(v, b=b):
                return float(loss(v, X[b], y[b]))
            num, ana = check_directions(f, w[b], grad(w[b], X[b], y[b]), rng, directions=directions)
            errors.append(rel_error(num, ana))
            used.append(float(np.max(gradient_errors(num, ana))))
        result[name] = {"rel_error": max(errors), "tolerance_used": max(used)}
    result["min_margin"] = float(margins(w, X, y).min())
    result["max_exp_loss"] = float(LOSSES["exp"][0](w, X, y).max())
    return result


def extreme_margins(X, y, w_star, scale: float = 1e3) -> dict:
    r"""The logistic loss and gradient at :math:`\pm` ``scale`` :math:`w^*`, where every margin is huge.

    At :math:`-s w^*` every margin is negative and :math:`\log(1 + e^{-m}) = |m| + \log(1 + e^{-|m|})`,
    so the loss is the mean :math:`|m_i|` up to terms below :math:`e^{-s\gamma}`.
    Every call runs with NumPy's overflow, invalid and divide warnings turned on and recorded.

    Parameters
    ----------
    X : ndarray of shape (B, n, d), the inputs.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w_star : ndarray of shape (B, d), separating directions (all margins positive).
    scale : float > 0, the factor s.

    Returns
    -------
    result : dict with
        ``loss_pos_max`` float, the largest loss at :math:`+s w^*`;
        ``loss_pos_min`` float, the smallest one (0.0 would mean it underflowed);
        ``linear_rel_error`` float, :func:`ngdformer.rel_error` of the loss at :math:`-s w^*` against the mean :math:`|m_i|`;
        ``finite`` bool, whether both losses and both gradients are finite;
        ``warnings`` int, the number of RuntimeWarnings raised.
    """
    big = scale * np.asarray(w_star)
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="warn", invalid="warn", divide="warn"):
        warnings.simplefilter("always")
        loss_pos, loss_neg = logistic_loss(big, X, y), logistic_loss(-big, X, y)
        grads = logistic_loss_grad(big, X, y), logistic_loss_grad(-big, X, y)
    mean_abs = np.abs(margins(-big, X, y)).mean(-1)  # (B,)
    return {
        "loss_pos_max": float(loss_pos.max()),
        "loss_pos_min": float(loss_pos.min()),
        "linear_rel_error": rel_error(loss_neg, mean_abs),
        "finite": bool(all(np.all(np.isfinite(a)) for a in (loss_pos, loss_neg) + grads)),
        "warnings": sum(issubclass(c.category, RuntimeWarning) for c in caught),
    }


class GDRun(NamedTuple):
    r"""GD on the logistic loss read at log-spaced checkpoints (returned by :func:`gd_separable`).

    ``K`` checkpoints, ``B`` tasks.
    """

    ts: np.ndarray  #: (K,) int, the checkpoints t (log-spaced from 1 to ``steps``, plus ``t_mid``)
    norms: np.ndarray  #: (K, B), :math:`\|w_t\|`
    angles: np.ndarray  #: (K, B), the angle between :math:`w_t` and :math:`w_{mm}`, radians
    losses: np.ndarray  #: (K, B), :math:`\mathcal L(w_t)` (logistic)
    margin_ratio: np.ndarray  #: (K, B), :math:`\gamma(w_t) / \gamma(w_{mm}) = \gamma(w_t)\|w_{mm}\|`
    norm_mm: np.ndarray  #: (B,), :math:`\|w_{mm}\|`
    smoothness: np.ndarray  #: (B,), :math:`\beta = \lambda_{\max}(X^\top X)/(4n)`, the smoothness of the loss
    eta: float  #: the step size
    t_mid: int  #: the start of the last decade of checkpoints


def gd_separable(X, y, eta: float = 1.0, steps: int = 20_000, checkpoints: int = 30) -> GDRun:
    r"""Run GD on the logistic loss from :math:`w_0 = 0` and record norm, direction, loss and margin.

    .. math:: w_{t+1} = w_t - \eta \nabla\mathcal L(w_t), \qquad w_0 = 0

    Parameters
    ----------
    X : ndarray of shape (B, n, d), separable contexts.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    eta : float > 0, the (constant) step size.
    steps : int >= 10, the number of GD steps; the last decade starts at ``t_mid = steps // 10``.
    checkpoints : int, the number of log-spaced checkpoints in [1, steps] (``t_mid`` is added).

    Returns
    -------
    run : GDRun
    """
    B, n, d = X.shape
    t_mid = steps // 10
    w_mm = max_margin(X, y)  # (B, d)
    traj = gd(np.zeros((B, d)), X, y, eta, steps)  # (steps + 1, B, d)
    ts = np.unique(np.r_[np.round(np.logspace(0, np.log10(steps), checkpoints)).astype(int), t_mid])
    w_t = traj[ts]  # (K, B, d)
    norm_mm = np.linalg.norm(w_mm, axis=-1)  # (B,)
    gram = np.swapaxes(X, -1, -2) @ X  # (B, d, d)
    return GDRun(ts=ts, norms=np.linalg.norm(w_t, axis=-1), angles=angle(w_t, w_mm),
                 losses=logistic_loss(w_t, X, y), margin_ratio=normalized_margin(w_t, X, y) * norm_mm,
                 norm_mm=norm_mm, smoothness=np.linalg.eigvalsh(gram)[:, -1] / (4 * n),
                 eta=float(eta), t_mid=int(t_mid))


def gd_rates(run: GDRun) -> dict:
    r"""The numbers the chapter asserts about a :class:`GDRun`, over its last decade ``t_mid -> steps``.

    With :math:`w_t \approx w_{mm}\log t + \rho_t` ([SHN18]): the slope of :math:`\|w_t\|` against
    :math:`\log t` tends to :math:`\|w_{mm}\|`, the angle shrinks like :math:`1/\log t`, and
    :math:`t\,\eta\,\mathcal L(w_t) \to \|w_{mm}\|^2`.

    Parameters
    ----------
    run : GDRun, from :func:`gd_separable`.

    Returns
    -------
    rates : dict with
        ``norms_increase`` bool, :math:`\|w_t\|` grows between every two checkpoints of every task;
        ``angle_decreases`` bool, the mean angle over tasks falls between every two checkpoints;
        ``slope_ratio`` ndarray (B,), :math:`(\|w_{t_1}\| - \|w_{t_0}\|) / (\log(t_1/t_0)\,\|w_{mm}\|)` over the last decade;
        ``local_slope`` ndarray (K-1, B), the same between consecutive checkpoints;
        ``t_local`` ndarray (K-1,), the geometric mid-points of consecutive checkpoints;
        ``angle_end`` float, the mean angle at the last checkpoint (radians);
        ``angle_ratio`` float, mean angle at :math:`t_1` over mean angle at :math:`t_0`;
        ``angle_ratio_log`` float, the ratio :math:`\log t_0 / \log t_1` that a :math:`c/\log t` law predicts;
        ``angle_log_ratio`` float, ``angle_ratio / angle_ratio_log`` (1 for an exact :math:`c/\log t`);
        ``loss_scaled`` ndarray (K,), the mean over tasks of :math:`t\,\eta\,\mathcal L(w_t)/\|w_{mm}\|^2`;
        ``k_mid`` int, the index of ``t_mid`` among the checkpoints;
        ``margin_ratio_end`` float, the mean :math:`\gamma(w_t)/\gamma(w_{mm})` at the last checkpoint;
        ``eta_beta_max`` float, the largest :math:`\eta\beta` over tasks (GD is stable below 2).
    """
    ts, k0 = run.ts, int(np.searchsorted(run.ts, run.t_mid))
    t0, t1 = ts[k0], ts[-1]
    log_ts = np.log(ts)  # (K,)
    mean_angle = run.angles.mean(-1)  # (K,)
    angle_ratio = float(mean_angle[-1] / mean_angle[k0])
    ratio_log = float(np.log(t0) / np.log(t1))
    return {
        "norms_increase": bool(np.all(np.diff(run.norms, axis=0) > 0)),
        "angle_decreases": bool(np.all(np.diff(mean_angle) < 0)),
        "slope_ratio": (run.norms[-1] - run.norms[k0]) / np.log(t1 / t0) / run.norm_mm,
        "local_slope": np.diff(run.norms, axis=0) / np.diff(log_ts)[:, None] / run.norm_mm,
        "t_local": np.sqrt(ts[1:] * ts[:-1]),
        "angle_end": float(mean_angle[-1]),
        "angle_ratio": angle_ratio,
        "angle_ratio_log": ratio_log,
        "angle_log_ratio": angle_ratio / ratio_log,
        "loss_scaled": (ts[:, None] * run.eta * run.losses / run.norm_mm**2).mean(-1),
        "k_mid": k0,
        "margin_ratio_end": float(run.margin_ratio[-1].mean()),
        "eta_beta_max": float(run.eta * run.smoothness.max()),
    }


def step_size_effect(run: GDRun, other: GDRun) -> dict:
    r"""How a larger constant step moves GD at the last checkpoint: two :class:`GDRun` on the same tasks.

    With :math:`w_t \approx w_{mm}\log(\eta t) + \rho`, raising :math:`\eta` to :math:`\eta'` adds about
    :math:`\|w_{mm}\|\log(\eta'/\eta)` to the norm and multiplies the angle by about
    :math:`\log(\eta t)/\log(\eta' t)`.

    Parameters
    ----------
    run : GDRun, step size :math:`\eta`.
    other : GDRun, the same tasks and checkpoints with step size :math:`\eta'`.

    Returns
    -------
    effect : dict with
        ``norm_rise_ratio`` float, the mean rise of :math:`\|w_t\|` over :math:`\overline{\|w_{mm}\|}\log(\eta'/\eta)`;
        ``angle_factor`` float, the mean angle of ``other`` over that of ``run``.
    """
    rise = float((other.norms[-1] - run.norms[-1]).mean())
    return {"norm_rise_ratio": rise / (float(run.norm_mm.mean()) * np.log(other.eta / run.eta)),
            "angle_factor": float(other.angles[-1].mean() / run.angles[-1].mean())}
