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

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from .checks import (MAX_DEPTH, InputTypeError, as_float, check_depth, check_generator, check_positive, check_size,
                     check_weights)
from .fast import looped_trajectory
from .metrics import accuracy, cosine, normalized_difference, relative_difference
from .solvers import gd, max_margin, ngd, normalized_margin
from .tasks import _check_cov, _check_flip, _sample_points, _sample_w_star, embed

KINDS = ("tf", "ngd", "gd")  # transformer, NGD, GD


class Shift(NamedTuple):
    """One evaluation setting; a field left at None keeps the in-distribution value.

    Every field is checked before anything runs: a bad value (``n=0``, ``depth=-1``, ``flip=1.0``, a
    covariance of the wrong size) raises ``ValueError`` naming the shift's field, never falls back to a default.
    """

    name: str  #: label of the shift, the key of its row in :func:`evaluate_ood`'s results (non-empty, unique)
    depth: int | None = None  #: applications L of the layer (and steps of NGD/GD), 0 <= depth <= MAX_DEPTH
    n: int | None = None  #: context size n >= 1
    sigma0: float | None = None  #: scale of the start, w0 ~ N(0, sigma0^2 I), shape (B, d); sigma0 >= 0
    cov: np.ndarray | None = None  #: (d, d) input covariance Sigma, symmetric PSD (None: identity)
    margin: float = 0.0  #: minimum |<w*, x>| of every point, context and held-out; margin >= 0
    flip: float = 0.0  #: label-flip probability in the context, in [0, 1) (held-out labels stay clean)


def anisotropic_cov(d: int, condition: float = 10.0) -> np.ndarray:
    r"""Diagonal input covariance, eigenvalues spaced geometrically from :math:`\kappa^{-1/2}` to :math:`\kappa^{1/2}`.

    .. math:: \Sigma = \mathrm{diag}(\kappa^{-1/2}, \dots, \kappa^{1/2}), \qquad
              \lambda_{\max} / \lambda_{\min} = \kappa \ (d \ge 2)

    Parameters
    ----------
    d : int >= 1, input dimension.
    condition : float >= 1, the condition number :math:`\kappa` (default 10).

    Returns
    -------
    cov : ndarray of shape (d, d), diagonal, increasing eigenvalues.
    """
    check_positive("d", d, integer=True)
    check_positive("condition", condition)
    if condition < 1:
        raise ValueError(f"condition must be >= 1 (it is lambda_max / lambda_min), got {condition!r}")
    check_size("cov", (d, d))
    return np.diag(np.geomspace(condition ** -0.5, condition ** 0.5, d))


def default_shifts(n: int, d: int, *, depth: int, long_depth: int | None = None, sigma0: float = 1.0) -> list:
    """The standard shifts: in distribution, [deeper], n/2, 2n, w0 x10, anisotropic, margin 0.3, 10% label noise.

    The anisotropic covariance is :func:`anisotropic_cov` ``(d)`` (condition number 10).

    Parameters
    ----------
    n : int >= 1, the in-distribution context size.
    d : int >= 1, the input dimension (sets the size of the anisotropic covariance).
    depth : int >= 0, in-distribution depth, which every shift but "deeper" runs at (those shifts leave
        ``depth`` at None, so :func:`evaluate_ood` supplies it).
    long_depth : int >= 0 or None, depth of the "deeper" shift (left out when None).
    sigma0 : float >= 0, in-distribution scale of w0 (the "w0 x10" shift uses 10 sigma0, or 10 if sigma0 = 0).

    Returns
    -------
    shifts : list of :class:`Shift`, 7 entries (8 with ``long_depth``).
    """
    check_positive("n", n, integer=True)
    check_positive("d", d, integer=True)
    check_depth(depth)
    if long_depth is not None:
        check_depth(long_depth, "long_depth")
    check_positive("sigma0", sigma0, allow_zero=True)
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
    depth : int, 0 <= depth <= MAX_DEPTH, the last depth.
    count : int >= 1, the number of geometric points in [1, depth] before rounding and removing duplicates
        (default 12).

    Returns
    -------
    depths : ndarray of int, shape (K,), increasing, from 0 to ``depth`` (just ``[0]`` when ``depth = 0``).
    """
    check_depth(depth)
    check_positive("count", count, integer=True, maximum=MAX_DEPTH)
    if depth == 0:
        return np.zeros(1, int)
    return np.unique(np.r_[0, np.round(np.geomspace(1, depth, count)).astype(int)])


def _check_depths(depths, name: str = "depths") -> np.ndarray:
    """A non-empty, non-decreasing 1-D sequence of integer depths in [0, MAX_DEPTH]; returned as int64."""
    try:
        arr = np.asarray(depths)
    except Exception as exc:
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of depths, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":  # floats would be truncated, bools are not depths
        raise InputTypeError(f"{name} must be integers (numbers of applications), got dtype {arr.dtype}: "
                             f"{str(depths)[:80]}")
    if arr.min() < 0 or arr.max() > MAX_DEPTH:
        bad = arr[(arr < 0) | (arr > MAX_DEPTH)][0]
        raise ValueError(f"{name} must lie in [0, {MAX_DEPTH}] (the limit on depth), found {bad}")
    if np.any(np.diff(arr) < 0):
        raise ValueError(f"{name} must be increasing (the last one is the depth run), got {str(depths)[:80]}")
    return arr.astype(np.int64)


def transformer_iterates(W, V, X, y, w0, depths) -> np.ndarray:
    r"""The looped model's iterates :math:`u_t` (bottom half of the query column after t applications), t in ``depths``.

    Parameters
    ----------
    W : ndarray of shape (D, D), D = 2d, the score weights.
    V : ndarray of shape (D, D), the value weights.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    w0 : ndarray of shape (..., d), the starting iterate; leading dimensions broadcast with those of ``X``.
    depths : sequence of int, increasing depths in [0, MAX_DEPTH]; the model runs ``depths[-1]`` applications.

    Returns
    -------
    u : ndarray of shape (len(depths), ..., d), from :func:`ngdformer.looped_trajectory`
    """
    depths = _check_depths(depths)
    Z = embed(X, y, w0)  # validates X, y, w0
    d, last = Z.shape[-2] // 2, int(depths[-1])
    check_size(f"the trajectory up to depths[-1] = {last}", (last + 1,) + Z.shape[:-2] + (d,))
    return looped_trajectory(Z, W, V, Z.shape[-1] - 1, last)[depths]


def _margin_reference(X, y, flip: float) -> np.ndarray:
    """Max-margin normalized margin per task; NaN under label noise or if a context is not separable."""
    if flip > 0:  # label noise: usually no separating direction, so the fraction is undefined
        return np.full(X.shape[0], np.nan)
    try:
        return normalized_margin(max_margin(X, y), X, y)
    except ValueError:  # label noise: no max-margin solution, the fraction is undefined
        return np.full(X.shape[0], np.nan)


def _check_layer_weights(W, V) -> tuple[np.ndarray, np.ndarray]:
    """``W`` and ``V`` both (D, D) with D = 2d >= 2, finite."""
    W = as_float("W", W, ndim_min=2)
    D = W.shape[-1]
    if W.shape != (D, D) or D == 0 or D % 2:
        raise ValueError(f"W must have shape (D, D) with D = 2d even and positive, got shape {W.shape}")
    return check_weights(W, V, D)


def _check_shift(shift, d: int, where: str):
    """Every field of one :class:`Shift` (named ``where`` in messages); returns the root of its covariance or None."""
    if not isinstance(shift, Shift):
        raise InputTypeError(f"{where} must be a Shift, got {str(shift)[:80]}")
    if not isinstance(shift.name, str) or not shift.name:
        raise InputTypeError(f"{where}.name must be a non-empty str, got {shift.name!r}")
    if shift.depth is not None:
        check_depth(shift.depth, f"{where}.depth")
    if shift.n is not None:
        check_positive(f"{where}.n", shift.n, integer=True)
    if shift.sigma0 is not None:
        check_positive(f"{where}.sigma0", shift.sigma0, allow_zero=True)
    check_positive(f"{where}.margin", shift.margin, allow_zero=True)
    _check_flip(shift.flip, f"{where}.flip")
    return None if shift.cov is None else _check_cov(shift.cov, d, f"{where}.cov")


def _check_settings(rng, W, V, *, eta, n, depth, batch, n_test, sigma0, eta_gd):
    """The arguments :func:`evaluate_shift` and :func:`evaluate_ood` share."""
    rng = check_generator(rng)
    W, V = _check_layer_weights(W, V)
    check_positive("eta", eta)
    if eta_gd is not None:
        check_positive("eta_gd", eta_gd)
    check_positive("n", n, integer=True)
    check_depth(depth)
    check_positive("batch", batch, integer=True)
    check_positive("n_test", n_test, integer=True)
    check_positive("sigma0", sigma0, allow_zero=True)
    return rng, W, V


def _plan(shift: Shift, where: str, *, d: int, n: int, depth: int, batch: int, n_test: int, depths) -> tuple:
    """The context size and depths one shift runs at.

    Refuses sizes beyond the limits and ``depths`` that end at another depth than the shift runs.
    """
    n_s = n if shift.n is None else shift.n
    depth_s = depth if shift.depth is None else shift.depth
    if depths is None:
        depths_s = default_depths(depth_s)
    elif depths[-1] != depth_s:
        raise ValueError(f"depths ends at {depths[-1]} but {where} ({shift.name!r}) runs depth {depth_s}: "
                         "the last entry of depths must be the depth run")
    else:
        depths_s = depths
    check_size(f"X of {where}", (batch, n_s, d))
    check_size(f"the held-out points (batch, n_test, d) of {where}", (batch, n_test, d))
    check_size(f"the trajectories (depth + 1, batch, d) of {where}", (depth_s + 1, batch, d))
    return n_s, depths_s


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
    n : int >= 1, in-distribution context size.
    depth : int, 0 <= depth <= MAX_DEPTH, in-distribution depth (applications of the layer, steps of NGD and GD).
    batch : int >= 1, tasks drawn per shift (default 64).
    n_test : int >= 1, clean held-out points per task for the accuracy (default 1000).
    sigma0 : float >= 0, in-distribution scale of w0 (default 1).
    eta_gd : float > 0 or None, step size of GD (default ``eta``).
    depths : sequence of int or None, increasing integer depths >= 0 at which to record the curves
        (default :func:`default_depths`); the last one must be the depth the shift runs
        (``shift.depth``, else ``depth``).

    Returns
    -------
    table : dict, the per-shift dict described in :func:`evaluate_ood`.
    """
    rng, W, V = _check_settings(rng, W, V, eta=eta, n=n, depth=depth, batch=batch, n_test=n_test, sigma0=sigma0,
                                eta_gd=eta_gd)
    d = W.shape[-1] // 2
    root = _check_shift(shift, d, "shift")
    depths = None if depths is None else _check_depths(depths)
    n_s, depths_s = _plan(shift, "shift", d=d, n=n, depth=depth, batch=batch, n_test=n_test, depths=depths)
    return _evaluate_shift(rng, W, V, shift, root, eta=eta, n=n_s, batch=batch, n_test=n_test, sigma0=sigma0,
                           eta_gd=eta_gd, depths=depths_s)


def _evaluate_shift(rng, W, V, shift: Shift, root, *, eta, n, batch, n_test, sigma0, eta_gd, depths) -> dict:
    """Kernel of :func:`evaluate_shift` on checked arguments: ``n`` and ``depths`` are the shift's own."""
    d = W.shape[-1] // 2
    sigma0 = sigma0 if shift.sigma0 is None else shift.sigma0
    w_star = _sample_w_star(rng, batch, d)
    X, y = _sample_points(rng, w_star, n, shift.margin, shift.flip, root)
    X_test, y_test = _sample_points(rng, w_star, n_test, shift.margin, 0.0, root)
    w0 = sigma0 * rng.standard_normal((batch, d))
    last = int(depths[-1])
    it = {"tf": looped_trajectory(embed(X, y, w0), W, V, n, last)[depths],  # (K, B, d)
          "ngd": ngd(w0, X, y, eta, last)[depths],
          "gd": gd(w0, X, y, eta if eta_gd is None else eta_gd, last)[depths]}
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
    default ``eta``) all start from the same :math:`w_0 \sim N(0, \sigma_0^2 I)`. Every argument and
    every field of every shift is checked before the first shift runs.

    Parameters
    ----------
    rng : np.random.Generator, draws every shift's tasks, held-out points and w0, in order.
    W : ndarray of shape (D, D), D = 2d, the score weights, e.g. from :func:`ngdformer.training.train_one_step_layer`.
    V : ndarray of shape (D, D), the value weights.
    eta : float > 0, NGD step size to compare with (the one the layer was trained for).
    n : int >= 1, in-distribution context size.
    depth : int, 0 <= depth <= MAX_DEPTH, in-distribution depth (applications of the layer, steps of NGD and GD).
    shifts : list of :class:`Shift` with distinct names, or None (default :func:`default_shifts`
        ``(n, d, depth=depth, sigma0=sigma0)``).
    batch : int >= 1, tasks drawn per shift (default 64).
    n_test : int >= 1, clean held-out points per task for the accuracy (default 1000).
    sigma0 : float >= 0, in-distribution scale of w0 (default 1).
    eta_gd : float > 0 or None, step size of GD (default ``eta``).
    depths : sequence of int or None, increasing integer depths >= 0 at which to record the curves
        (default :func:`default_depths` of each shift's depth); the last one must be the depth every
        shift runs (its own ``depth``, else ``depth``).

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
    rng, W, V = _check_settings(rng, W, V, eta=eta, n=n, depth=depth, batch=batch, n_test=n_test, sigma0=sigma0,
                                eta_gd=eta_gd)
    d = W.shape[-1] // 2
    if shifts is None:
        shifts = default_shifts(n, d, depth=depth, sigma0=sigma0)
    elif isinstance(shifts, (Shift, str, Mapping)) or not isinstance(shifts, (list, tuple)):
        raise InputTypeError(f"shifts must be a list of Shift (or None), got {str(shifts)[:80]}")
    depths = None if depths is None else _check_depths(depths)
    plans, names = [], set()
    for k, shift in enumerate(shifts):
        where = f"shifts[{k}]"
        root = _check_shift(shift, d, where)
        if shift.name in names:
            raise ValueError(f"{where} repeats the name {shift.name!r}: each name keys one entry of the results")
        names.add(shift.name)
        plans.append((shift, root) + _plan(shift, where, d=d, n=n, depth=depth, batch=batch, n_test=n_test,
                                           depths=depths))
    return {shift.name: _evaluate_shift(rng, W, V, shift, root, eta=eta, n=n_s, batch=batch, n_test=n_test,
                                        sigma0=sigma0, eta_gd=eta_gd, depths=depths_s)
            for shift, root, n_s, depths_s in plans}


_TABLE_KEYS = ("depth", "n", "diff", "diff_max", "rel_max") + tuple(f"{m}_{k}" for m in ("cos", "margin", "acc")
                                                                     for k in ("tf", "ngd"))


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
    if not isinstance(results, Mapping):
        raise InputTypeError(f"results must be the dict evaluate_ood returns, got {str(results)[:80]}")
    for name, t in results.items():
        missing = [key for key in _TABLE_KEYS if not isinstance(t, Mapping) or key not in t]
        if missing:
            raise ValueError(f"results[{name!r}] lacks {missing}: expected a per-shift dict of evaluate_ood")
        if any(np.ndim(t[key]) != 1 or len(t[key]) == 0 for key in _TABLE_KEYS if key != "n"):
            raise ValueError(f"results[{name!r}] must hold non-empty 1-D per-depth arrays, as evaluate_ood returns")
    head = (f"{'shift':<17}| {'depth':>5} | {'n':>4} | {'|u/|u|-v/|v|| mean / max':^25} | {'rel diff max':>12} | "
            f"{'cos(w*) tf / ngd':^17} | {'margin/max tf / ngd':^19} | {'acc tf / ngd':^13}")
    rows = [head, "-" * len(head)]
    for name, t in results.items():
        pair = lambda m: f"{t[f'{m}_tf'][-1]:.3f} / {t[f'{m}_ngd'][-1]:.3f}"  # noqa: E731
        rows.append(f"{name:<17}| {t['depth'][-1]:>5} | {t['n']:>4} | {t['diff'][-1]:11.1e} / "
                    f"{t['diff_max'][-1]:.1e} | {t['rel_max'][-1]:12.1e} | {pair('cos'):^17} | "
                    f"{pair('margin'):^19} | {pair('acc'):^13}")
    return "\n".join(rows)
