r"""Chapter 07's experiments: a trained layer looped out of distribution, against NGD and GD.

Each function takes an explicit ``np.random.Generator``, prints nothing and returns plain numbers
or arrays. ``tests/test_experiments_ch07.py`` checks on several seeds every claim the chapter makes
about them.
"""

from __future__ import annotations

import numpy as np

from ..boundaries import margin_fraction
from ..construction import looped_forward, ngd_weights
from ..gradcheck import rel_error
from ..metrics import accuracy, cosine, normalized_difference
from ..ood import default_depths, default_shifts, transformer_iterates
from ..solvers import gd, max_margin, ngd
from ..tasks import embed, read_weights, sample_points, sample_tasks
from ..training import train_one_step_layer


def train_layers(rng: np.random.Generator, *, n: int = 40, d: int = 10, etas=(0.5, 1.0), **recipe) -> dict:
    r"""Train one layer per step size on one-step NGD targets with the package's converging recipe.

    The recipe is :func:`ngdformer.train_one_step_layer`'s defaults (chapter 06) unless ``recipe``
    overrides them: 500 Adam iterations from :math:`W = V = 0`, learning rate 0.02 decayed to 0 on a
    cosine, 32 fresh tasks per iteration, starting iterates :math:`w_0 \sim N(0, I_d / d)`.

    Parameters
    ----------
    rng : np.random.Generator, draws every training batch, one layer after the other.
    n : int, context size of the training distribution.
    d : int, input dimension.
    etas : sequence of float > 0, the NGD step sizes taught, one layer each.
    **recipe : keyword arguments passed on to :func:`ngdformer.train_one_step_layer` in place of its defaults
        (``iterations``, ``batch``, ``lr``, ``sigma0``, ``schedule``, ...).

    Returns
    -------
    layers : dict mapping each eta to ``(W, V, history)``, W and V of shape (2d, 2d) and
        ``history`` the dict of :func:`ngdformer.train_one_step_layer`.
    """
    return {float(eta): train_one_step_layer(rng, n=n, d=d, eta=eta, **{"quiet": True, **recipe}) for eta in etas}


def three_ways(rng: np.random.Generator, W, V, *, n: int, depth: int, batch: int = 64) -> tuple[float, float]:
    r"""Relative error between three ways of running the looped model on the same fresh tasks.

    The evaluation's :func:`ngdformer.ood.transformer_iterates` against the query-only loop
    (``looped_forward(..., query_only=True)``) and against the full layer (every column a query).

    Parameters
    ----------
    rng : np.random.Generator, draws ``batch`` tasks of size (n, d) and :math:`w_0 \sim N(0, I_d / d)`.
    W, V : ndarray of shape (2d, 2d), a layer whose context is inert (:func:`ngdformer.context_is_inert`).
    n : int, context size.
    depth : int >= 1, applications of the layer.
    batch : int, number of tasks.

    Returns
    -------
    err_query, err_full : float, :func:`ngdformer.rel_error` of the depth-``depth`` iterates (batch, d).
    """
    d = np.shape(W)[-1] // 2
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = rng.standard_normal((batch, d)) / np.sqrt(d)
    u_eval = transformer_iterates(W, V, X, y, w0, [depth])[-1]  # (batch, d)
    Z0 = embed(X, y, w0)  # (batch, 2d, n + 1)
    u_query = read_weights(looped_forward(Z0, W, V, n, depth, query_only=True))
    u_full = read_weights(looped_forward(Z0, W, V, n, depth))
    return rel_error(u_eval, u_query), rel_error(u_eval, u_full)


def ood_gaps(rng: np.random.Generator, W, V, *, eta: float, n: int, depth: int = 20, long_depth: int = 100,
             batch: int = 64, n_test: int = 500) -> dict:
    r"""Per-task gaps to NGD of the looped layer and of the construction under the standard shifts (paper Fig. 8).

    For each shift of :func:`ngdformer.ood.default_shifts` (in-distribution start
    :math:`w_0 \sim N(0, I_d / d)`, as in training) it draws ``batch`` tasks, ``n_test`` clean
    held-out points per task and the starts, then runs on the *same* tasks the trained layer,
    the construction :math:`(W^*, V^*)` = ``ngd_weights(d, eta)`` (NGD in exact arithmetic: its
    gap is the floating-point floor) and NGD, and measures per task and depth the normalized
    difference :math:`\|u_t/\|u_t\| - v_t/\|v_t\|\|` to NGD. Over tasks these gaps are heavy-tailed
    (one task where the NGD map amplifies can dominate a mean), so the summaries use the median
    over tasks (the typical task) and the maximum (the worst task).

    Parameters
    ----------
    rng : np.random.Generator, draws every shift's tasks, held-out points and starts, in order.
    W, V : ndarray of shape (2d, 2d), the trained layer.
    eta : float > 0, the NGD step size the layer was trained for.
    n : int, the training context size.
    depth : int, in-distribution depth (every shift but the deeper one).
    long_depth : int, depth of the "depth <long_depth>" shift.
    batch : int, tasks per shift.
    n_test : int, held-out points per task.

    Returns
    -------
    gaps : dict mapping each shift's name to a dict with
        ``depth`` : ndarray of int, shape (K,), from 0 (:func:`ngdformer.ood.default_depths`);
        ``n`` : int, the context size used;
        ``trained``, ``construction`` : ndarray of shape (K, batch), the per-task gaps;
        ``median``, ``worst``, ``floor`` : float, over depths >= 1, the largest median over tasks of the trained
        layer's gap, its largest single-task gap, and the construction's largest single-task gap;
        ``median_first``, ``median_last``, ``worst_first``, ``worst_last``, ``floor_first``, ``floor_last`` : float,
        the same at depth 1 and at the last depth;
        ``cos_diff``, ``acc_diff`` : float, over depths, the largest difference between the layer's and NGD's mean
        cosine to :math:`w^*` and mean held-out accuracy.
    """
    d = np.shape(W)[-1] // 2
    sigma0 = 1.0 / np.sqrt(d)
    Ws, Vs = ngd_weights(d, eta)
    out = {}
    for shift in default_shifts(n, d, depth=depth, long_depth=long_depth, sigma0=sigma0):
        n_s = n if shift.n is None else shift.n
        depths = default_depths(depth if shift.depth is None else shift.depth)  # (K,)
        X, y, w_star = sample_tasks(rng, batch, n_s, d, margin=shift.margin, flip=shift.flip, cov=shift.cov)
        X_test, y_test = sample_points(rng, w_star, n_test, margin=shift.margin, cov=shift.cov)
        w0 = (sigma0 if shift.sigma0 is None else shift.sigma0) * rng.standard_normal((batch, d))
        v = ngd(w0, X, y, eta, int(depths[-1]))[depths]  # (K, batch, d)
        u = transformer_iterates(W, V, X, y, w0, depths)  # (K, batch, d)
        c = transformer_iterates(Ws, Vs, X, y, w0, depths)
        gap, floor = normalized_difference(u, v), normalized_difference(c, v)  # (K, batch)
        med = np.median(gap, axis=-1)  # (K,)
        cos_gap = np.abs(cosine(u, w_star).mean(-1) - cosine(v, w_star).mean(-1))
        acc_gap = np.abs(accuracy(u, X_test, y_test).mean(-1) - accuracy(v, X_test, y_test).mean(-1))
        out[shift.name] = {
            "depth": depths, "n": n_s, "trained": gap, "construction": floor,
            "median": float(med[1:].max()), "worst": float(gap[1:].max()), "floor": float(floor[1:].max()),
            "median_first": float(med[1]), "median_last": float(med[-1]),
            "worst_first": float(gap[1].max()), "worst_last": float(gap[-1].max()),
            "floor_first": float(floor[1].max()), "floor_last": float(floor[-1].max()),
            "cos_diff": float(cos_gap.max()), "acc_diff": float(acc_gap.max())}
    return out


def prediction_over_depth(rng: np.random.Generator, W, V, *, eta: float, n: int, depth: int = 2000,
                          batch: int = 64, n_test: int = 500, count: int = 40) -> dict:
    r"""In-context prediction of the looped layer, NGD and GD over depth, with the max-margin reference (paper Fig. 6).

    Draws ``batch`` in-distribution tasks, ``n_test`` clean held-out points per task and
    :math:`w_0 \sim N(0, I_d / d)`; runs the looped layer, NGD (exponential loss, step ``eta``)
    and GD (logistic loss, step ``eta``) for ``depth`` steps from the same start, and the
    max-margin direction :math:`w_{mm}` of every context.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, held-out points and starts.
    W, V : ndarray of shape (2d, 2d), the layer.
    eta : float > 0, step size of NGD and GD.
    n : int, context size.
    depth : int >= 1, the last depth.
    batch : int, tasks.
    n_test : int, held-out points per task.
    count : int, about how many geometrically spaced depths to record (:func:`ngdformer.ood.default_depths`).

    Returns
    -------
    pred : dict with
        ``depth`` : ndarray of int, shape (K,), from 0 to ``depth``;
        ``cos_k``, ``margin_k``, ``acc_k`` for k in tf, ngd, gd : ndarray of shape (K,), the mean over tasks of the
        cosine to :math:`w^*`, the margin fraction :math:`\gamma(w_t)/\gamma(w_{mm})` and the held-out accuracy;
        ``cos_mm`` : float, the mean cosine of :math:`w_{mm}` to :math:`w^*`;
        ``peak`` : float, the largest mean cosine of NGD to :math:`w^*` over the recorded depths;
        ``peak_depth`` : int, the depth where it is reached;
        ``tf_ngd_cos``, ``tf_ngd_acc`` : float, the largest difference over depths between the layer's and
        NGD's mean cosine / mean accuracy.
    """
    d = np.shape(W)[-1] // 2
    X, y, w_star = sample_tasks(rng, batch, n, d)
    X_test, y_test = sample_points(rng, w_star, n_test)
    w0 = rng.standard_normal((batch, d)) / np.sqrt(d)
    depths = default_depths(depth, count)
    w_mm = max_margin(X, y)  # (batch, d)
    it = {"tf": transformer_iterates(W, V, X, y, w0, depths),  # (K, batch, d)
          "ngd": ngd(w0, X, y, eta, depth)[depths],
          "gd": gd(w0, X, y, eta, depth)[depths]}
    out = {"depth": depths, "cos_mm": float(cosine(w_mm, w_star).mean())}
    for k, w in it.items():
        out[f"cos_{k}"] = cosine(w, w_star).mean(-1)
        out[f"margin_{k}"] = margin_fraction(w, X, y, w_mm).mean(-1)
        out[f"acc_{k}"] = accuracy(w, X_test, y_test).mean(-1)
    top = int(np.argmax(out["cos_ngd"]))
    out["peak"], out["peak_depth"] = float(out["cos_ngd"][top]), int(depths[top])
    out["tf_ngd_cos"] = float(np.abs(out["cos_tf"] - out["cos_ngd"]).max())
    out["tf_ngd_acc"] = float(np.abs(out["acc_tf"] - out["acc_ngd"]).max())
    return out
