r"""Out-of-distribution evaluation of a (trained) looped layer against NGD and GD on the same tasks (chapter 07).

:func:`evaluate_ood` runs the layer (W, V) as a looped model under a list of :class:`Shift` s
(more applications, another context size n, another scale of :math:`w_0`, anisotropic inputs, a
margin, label noise) and returns, per shift, per-depth curves (paper Figs. 6 and 8):

.. math:: \Big\| \frac{u_t}{\|u_t\|} - \frac{v_t}{\|v_t\|} \Big\|, \quad
          \frac{\|u_t - v_t\|}{\|v_t\|}, \quad \cos(w_t, w^*), \quad
          \frac{\gamma(w_t)}{\gamma(w_{mm})}, \quad \text{held-out accuracy}

with :math:`u_t` the transformer's iterate after t applications and :math:`v_t` the NGD iterate
(exponential loss, step ``eta``) from the same :math:`w_0`. :func:`format_ood_table`
renders the last depth of each shift as one text row. The looped model runs on
:func:`ngdformer.looped_trajectory` (the query path when it is exact, else the full layer).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import check_depth, check_positive
from .fast import looped_trajectory
from .metrics import accuracy, cosine, normalized_difference, relative_difference
from .solvers import gd, max_margin, ngd, normalized_margin
from .tasks import embed, sample_points, sample_tasks

KINDS = ("tf", "ngd", "gd")  # transformer, NGD, GD


class Shift(NamedTuple):
    """One evaluation setting; a field left at None keeps the in-distribution value."""

    name: str  #: label of the shift, the key of its row in :func:`evaluate_ood`'s results
    depth: int | None = None  #: applications L of the layer (and steps of NGD/GD)
    n: int | None = None  #: context size n
    sigma0: float | None = None  #: scale of the start, w0 ~ N(0, sigma0^2 I), shape (B, d)
    cov: np.ndarray | None = None  #: (d, d) input covariance Sigma (None: identity)
    margin: float = 0.0  #: minimum |<w*, x>| of every point, context and held-out
    flip: float = 0.0  #: label-flip probability in the context (held-out labels stay clean)


def anisotropic_cov(d: int, condition: float = 10.0) -> np.ndarray:
    r"""Diagonal input covariance with eigenvalues geometrically spaced from :math:`1/\sqrt{\kappa}` to :math:`\sqrt{\kappa}`.

    .. math:: \Sigma = \mathrm{diag}(\kappa^{-1/2}, \dots, \kappa^{1/2}), \qquad
              \lambda_{\max} / \lambda_{\min} = \kappa \ (d \ge 2)

    Parameters
    ----------
    d : int, input dimension.
    condition : float > 0, the condition number :math:`\kappa` (default 10).

    Returns
    -------
    cov : ndarray of shape (d, d), diagonal, increasing eigenvalues.
    """
    check_positive("condition", condition)
    return np.diag(np.geomspace(condition ** -0.5, condition ** 0.5, d))


def default_shifts(n: int, d: int, *, depth: int, long_depth: int | None = None, sigma0: float = 1.0) -> list:
    """The standard list: in distribution, [deeper], n/2, 2n, w0 x10, anisotropic (condition 10), margin 0.3, 10% label noise.

    Parameters
    ----------
    n : int, the in-distribution context size.
    d : int, the input dimension (sets the size of the anisotropic covariance).
    depth : int, in-distribution depth, which every shift but "deeper" runs at (those shifts leave
        ``depth`` at None, so :func:`evaluate_ood` supplies it).
    long_depth : int or None, depth of the "deeper" shift (left out when None).
    sigma0 : float, in-distribution scale of w0 (the "w0 x10" shift uses 10 sigma0, or 10 if sigma0 = 0).

    Returns
    -------
    shifts : list of :class:`Shift`, 7 entries (8 with ``long_depth``).
    """
    shifts = [Shift("in distribution")]
    if long_depth is not None:
        shifts.append(Shift(f"depth {long_depth}", depth=long_depth))
    return shifts + [Shift(f"n = {max(n // 2, 1)}", n=max(n // 2, 1)), Shift(f"n = {2 * n}", n=2 * n),
                     Shift("|w0| x10", sigma0=10.0 * sigma0 if sigma0 > 0 else 10.0),
                     Shift("anisotropic x", cov=anisotropic_cov(d)), Shift("margin 0.3", margin=0.3),
                     Shift("10% label noise", flip=0.1)]


def default_depths(depth: int, count: int = 12) -> np.ndarray:
    """0 and about ``count`` geometrically spaced depths up to ``depth`` (unique integers).

    Parameters
    ----------
    depth : int >= 0, the last depth.
    count : int, the number of geometric points in [1, depth] before rounding and removing duplicates (default 12).

    Returns
    -------
    depths : ndarray of int, shape (K,), increasing, from 0 to ``depth`` (just ``[0]`` when ``depth = 0``).
    """
    return np.unique(np.r_[0, np.round(np.geomspace(1, max(depth, 1), count)).astype(int)]) if depth else np.zeros(1, int)


def transformer_iterates(W, V, X, y, w0, depths) -> np.ndarray:
    r"""The looped model's iterates :math:`u_t` (bottom half of the query column after t applications), t in ``depths``.

    Parameters
    ----------
    W : ndarray of shape (D, D), D = 2d, the score weights.
    V : ndarray of shape (D, D), the value weights.
    X : ndarray of shape (B, n, d), the context inputs x_i.
    y : ndarray of shape (B, n), labels in {-1, +1}.
    w0 : ndarray of shape (B, d), the starting iterate.
    depths : sequence of int, increasing depths >= 0; the model runs ``depths[-1]`` applications.

    Returns
    -------
    u : ndarray of shape (len(depths), B, d), from :func:`ngdformer.looped_trajectory`
    """
    depths = np.asarray(depths, dtype=int)
    return looped_trajectory(embed(X, y, w0), W, V, X.shape[-2], int(depths[-1]))[depths]


def _margin_reference(X, y, flip: float) -> np.ndarray:
    """Max-margin normalized margin per task; NaN under label noise or if a context is not separable."""
    if flip > 0:  # label noise: usually no separating direction, so the fraction is undefined
        return np.full(X.shape[0], np.nan)
    try:
        return normalized_margin(max_margin(X, y), X, y)
    except ValueError:  # label noise: no max-margin solution, the fraction is undefined
        return np.full(X.shape[0], np.nan)


def evaluate_shift(rng: np.random.Generator, W, V, shift: Shift, *, eta: float, n: int, depth: int,
                   batch: int = 64, n_test: int = 1000, sigma0: float = 1.0, eta_gd: float | None = None,
                   depths=None) -> dict:
    """Per-depth metrics of one shift: the transformer, NGD and GD on the same fresh tasks.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, held-out points and w0.
    W : ndarray of shape (D, D), D = 2d, the score weights.
    V : ndarray of shape (D, D), the value weights.
    shift : Shift, the setting; its non-None fields replace ``n``, ``depth`` and ``sigma0``.
    eta : float > 0, NGD step size to compare with (the one the layer was trained for).
    n : int, in-distribution context size.
    depth : int >= 0, in-distribution depth (applications of the layer, steps of NGD and GD).
    batch : int, tasks drawn per shift (default 64).
    n_test : int, clean held-out points per task for the accuracy (default 1000).
    sigma0 : float >= 0, in-distribution scale of w0 (default 1).
    eta_gd : float > 0 or None, step size of GD (default ``eta``).
    depths : sequence of int or None, increasing depths >= 0 at which to record the curves
        (default :func:`default_depths`; the last one is the depth actually run).

    Returns
    -------
    table : dict, the per-shift dict described in :func:`evaluate_ood`.
    """
    d = W.shape[-1] // 2
    n = n if shift.n is None else shift.n
    depth = depth if shift.depth is None else shift.depth
    sigma0 = sigma0 if shift.sigma0 is None else shift.sigma0
    depths = default_depths(depth) if depths is None else np.asarray(depths, dtype=int)
    X, y, w_star = sample_tasks(rng, batch, n, d, margin=shift.margin, flip=shift.flip, cov=shift.cov)
    X_test, y_test = sample_points(rng, w_star, n_test, margin=shift.margin, cov=shift.cov)
    w0 = sigma0 * rng.standard_normal((batch, d))
    it = {"tf": transformer_iterates(W, V, X, y, w0, depths),  # (K, B, d)
          "ngd": ngd(w0, X, y, eta, int(depths[-1]))[depths],
          "gd": gd(w0, X, y, eta if eta_gd is None else eta_gd, int(depths[-1]))[depths]}
    gamma_mm = _margin_reference(X, y, shift.flip)  # (B,)
    diff = normalized_difference(it["tf"], it["ngd"])  # (K, B)
    rel = relative_difference(it["tf"], it["ngd"])
    table = {"depth": depths, "diff": diff.mean(-1), "diff_max": diff.max(-1), "rel": rel.mean(-1),
             "rel_max": rel.max(-1), "n": n, "sigma0": sigma0}
    for key in KINDS:
        table[f"cos_{key}"] = cosine(it[key], w_star).mean(-1)
        table[f"margin_{key}"] = (normalized_margin(it[key], X, y) / gamma_mm).mean(-1)
        table[f"acc_{key}"] = accuracy(it[key], X_test, y_test).mean(-1)
    return table


def evaluate_ood(rng: np.random.Generator, W, V, *, eta: float, n: int, depth: int, shifts=None, batch: int = 64,
                 n_test: int = 1000, sigma0: float = 1.0, eta_gd: float | None = None, depths=None) -> dict:
    r"""Evaluate the looped layer (W, V) under distribution shifts, against NGD and GD on the same tasks (chapter 07).

    Each shift draws its own ``batch`` tasks (and ``n_test`` clean held-out points per task) from
    ``rng``; the transformer, NGD (exp loss, step ``eta``) and GD (logistic loss, step ``eta_gd``,
    default ``eta``) all start from the same :math:`w_0 \sim N(0, \sigma_0^2 I)`.

    Parameters
    ----------
    rng : np.random.Generator, draws every shift's tasks, held-out points and w0, in order.
    W : ndarray of shape (D, D), D = 2d, the score weights, e.g. from :func:`ngdformer.training.train_one_step_layer`.
    V : ndarray of shape (D, D), the value weights.
    eta : float > 0, NGD step size to compare with (the one the layer was trained for).
    n : int, in-distribution context size.
    depth : int >= 0, in-distribution depth (applications of the layer, steps of NGD and GD).
    shifts : list of :class:`Shift` or None (default :func:`default_shifts` ``(n, d, depth=depth, sigma0=sigma0)``).
    batch : int, tasks drawn per shift (default 64).
    n_test : int, clean held-out points per task for the accuracy (default 1000).
    sigma0 : float >= 0, in-distribution scale of w0 (default 1).
    eta_gd : float > 0 or None, step size of GD (default ``eta``).
    depths : sequence of int or None, increasing depths >= 0 at which to record the curves
        (default :func:`default_depths`; the last one is the depth actually run).

    Returns
    -------
    results : dict mapping each shift's name to a dict with
        ``depth`` (K,) ints; ``diff`` / ``diff_max`` (K,) mean / worst normalized difference
        :math:`\|u/\|u\| - v/\|v\|\|` over tasks; ``rel`` / ``rel_max`` (K,) relative difference
        :math:`\|u - v\|/\|v\|`; for k in tf, ngd, gd: ``cos_k`` (K,) mean cosine to w*,
        ``margin_k`` (K,) mean normalized margin / max-margin value (NaN when a context is not
        separable; always under label noise), ``acc_k`` (K,) mean held-out accuracy; and the
        settings used, ``n``, ``sigma0`` (the shift's depth is ``depth[-1]``). The dict also works with
        :func:`ngdformer.tour.format_table` and :func:`ngdformer.tour.plot_tour`.
    """
    check_positive("eta", eta)
    check_depth(depth)
    d = np.shape(W)[-1] // 2
    shifts = default_shifts(n, d, depth=depth, sigma0=sigma0) if shifts is None else shifts
    return {s.name: evaluate_shift(rng, W, V, s, eta=eta, n=n, depth=depth, batch=batch, n_test=n_test,
                                   sigma0=sigma0, eta_gd=eta_gd, depths=depths) for s in shifts}


def format_ood_table(results: dict) -> str:
    """Render :func:`evaluate_ood` results as a text table, one row per shift at its last depth.

    The columns: depth, n, normalized difference to NGD (mean / max), relative difference (max),
    cosine to w*, margin fraction and held-out accuracy (transformer / NGD for the last three).

    Parameters
    ----------
    results : dict, as returned by :func:`evaluate_ood` (shift name -> per-depth dict).

    Returns
    -------
    table : str, a header line, a rule and one line per shift.
    """
    head = (f"{'shift':<17}| {'depth':>5} | {'n':>4} | {'|u/|u|-v/|v|| mean / max':^25} | {'rel diff max':>12} | "
            f"{'cos(w*) tf / ngd':^17} | {'margin/max tf / ngd':^19} | {'acc tf / ngd':^13}")
    rows = [head, "-" * len(head)]
    for name, t in results.items():
        pair = lambda m: f"{t[f'{m}_tf'][-1]:.3f} / {t[f'{m}_ngd'][-1]:.3f}"  # noqa: E731
        rows.append(f"{name:<17}| {t['depth'][-1]:>5} | {t['n']:>4} | {t['diff'][-1]:11.1e} / {t['diff_max'][-1]:.1e} | "
                    f"{t['rel_max'][-1]:12.1e} | {pair('cos'):^17} | {pair('margin'):^19} | {pair('acc'):^13}")
    return "\n".join(rows)
