r"""Chapter 05's experiments: stacked and looped layers against NGD, round-off amplification, margins over depth.

Each function draws its tasks from the generator it is given, runs one experiment of
chapter 05 and returns its numbers; the chapter prints them and asserts its claims, and
``tests/test_experiments_ch05.py`` checks the same claims on many seeds.
"""

from __future__ import annotations

import numpy as np

from ..boundaries import margin_fraction
from ..construction import looped_forward, ngd_weights, stack_forward
from ..fast import looped_trajectory
from ..gradcheck import rel_error
from ..metrics import cosine, relative_difference
from ..solvers import gd, max_margin, ngd
from ..tasks import embed, read_weights, sample_tasks


def stack_and_loop(rng: np.random.Generator, *, batch: int = 64, n: int = 40, d: int = 10,
                   etas=(0.5, 0.1, 1.0, 0.25, 2.0), eta: float = 0.1, depth: int = 200) -> tuple[float, float]:
    r"""Stacked layers with per-layer step sizes, and the looped layer, against NGD.

    .. math:: \mathrm{read}\big(f_{\eta_L} \circ \cdots \circ f_{\eta_1}(Z_0)\big) \;\text{vs}\;
              \mathrm{NGD}_{\eta_L} \circ \cdots \circ \mathrm{NGD}_{\eta_1}(w_0)

    The stack starts from :math:`w_0 \sim N(0, I)`; the looped model (one layer with step
    ``eta`` applied ``depth`` times, the full textbook layer) from :math:`w_0 = 0`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the stack's start.
    batch, n, d : int, tasks B, context size and input dimension.
    etas : sequence of float > 0, the stack's step sizes, one layer each.
    eta : float > 0, the looped model's step size.
    depth : int >= 0, the looped model's depth L.

    Returns
    -------
    err_stack : float, :func:`ngdformer.rel_error` of the stack's iterate (B, d) against NGD's.
    err_loop : float, the same for the looped model.
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = rng.standard_normal((batch, d))
    out, _ = stack_forward(embed(X, y, w0), [ngd_weights(d, e) for e in etas], n)
    err_stack = rel_error(read_weights(out), ngd(w0, X, y, np.array(etas, dtype=float), len(etas))[-1])
    W, V = ngd_weights(d, eta)
    w_loop = read_weights(looped_forward(embed(X, y), W, V, n, depth))  # w0 = 0
    err_loop = rel_error(w_loop, ngd(np.zeros((batch, d)), X, y, eta, depth)[-1])
    return err_stack, err_loop


def amplification(rng: np.random.Generator, *, batch: int = 64, n: int = 40, d: int = 10,
                  etas=(0.1, 0.25, 0.5, 1.0), steps: int = 200, nudge: float = 1e-13) -> dict:
    r"""Does the NGD map amplify round-off? The looped model vs NGD, and NGD vs NGD from a nudged start.

    From :math:`w_0 = 0`, for each step size: the looped model at depth ``steps`` (query
    column only, exact for the construction) against ``steps`` NGD steps, and NGD from
    :math:`w_0 = \epsilon`, :math:`\epsilon \sim 10^{-13} N(0, I)`, against NGD from 0.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the nudge.
    batch, n, d : int, tasks B, context size and input dimension.
    etas : sequence of float > 0, the step sizes.
    steps : int >= 1, the depth L and number of NGD steps.
    nudge : float >= 0, the scale of the perturbation of :math:`w_0`.

    Returns
    -------
    result : dict with, for each step size ``e`` in ``etas``,

        - ``"loop_err"[e]`` : float, :func:`ngdformer.rel_error` of the looped model's last iterate against NGD's;
        - ``"nudge_err"[e]`` : float, the same for NGD from the nudged start against NGD from 0;
        - ``"drift"[e]`` : ndarray of shape (steps,), :func:`ngdformer.relative_difference` of the
          nudged iterate from the reference at steps 1..steps, the worst task at each step.
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w_nudge = nudge * rng.standard_normal((batch, d))
    result = {"loop_err": {}, "nudge_err": {}, "drift": {}}
    for e in etas:
        W, V = ngd_weights(d, e)
        ref = ngd(np.zeros((batch, d)), X, y, e, steps)  # (steps + 1, B, d)
        nudged = ngd(w_nudge, X, y, e, steps)
        w_tf = read_weights(looped_forward(embed(X, y), W, V, n, steps, query_only=True))
        result["loop_err"][e] = rel_error(w_tf, ref[-1])
        result["nudge_err"][e] = rel_error(nudged[-1], ref[-1])
        result["drift"][e] = relative_difference(nudged[1:], ref[1:]).max(axis=-1)  # (steps,)
    return result


def separators_over_depth(rng: np.random.Generator, *, n: int = 30, eta: float = 0.25,
                          depths=(0, 1, 2, 5, 20, 100), start_angle: float = 110.0,
                          margin: float = 0.1) -> dict:
    r"""One 2-D task: the looped model's iterate at several depths, from a bad unit start.

    The start :math:`w_0` is the unit max-margin direction rotated by ``start_angle`` degrees.

    Parameters
    ----------
    rng : np.random.Generator, draws the task.
    n : int, context size (d = 2).
    eta : float > 0, the layer's step size.
    depths : increasing sequence of int >= 0, the depths to record.
    start_angle : float, degrees between :math:`w_0` and :math:`w_{mm}`.
    margin : float >= 0, passed to :func:`ngdformer.sample_tasks`.

    Returns
    -------
    result : dict with ``"X"`` (n, 2), ``"y"`` (n,), ``"w_mm"`` (2,); ``"w"`` (len(depths), 2), the
        looped model's iterate at each depth; ``"fraction"`` and ``"cosine"`` (len(depths),), its
        :func:`ngdformer.margin_fraction` and :func:`ngdformer.cosine` to :math:`w_{mm}`; and ``"err"``, a float,
        :func:`ngdformer.rel_error` of the last recorded iterate against NGD's.
    """
    X, y, _ = sample_tasks(rng, 1, n, 2, margin=margin)
    w_mm = max_margin(X, y)  # (1, 2)
    a = np.deg2rad(start_angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    w0 = (w_mm / np.linalg.norm(w_mm)) @ rot.T  # (1, 2), unit norm
    W, V = ngd_weights(2, eta)
    Z, w_at, previous = embed(X, y, w0), [], 0
    for L in depths:
        Z = looped_forward(Z, W, V, n, L - previous)  # the full layer, depth by depth
        w_at.append(read_weights(Z))
        previous = L
    w_at = np.stack(w_at)  # (len(depths), 1, 2)
    return {"X": X[0], "y": y[0], "w_mm": w_mm[0], "w": w_at[:, 0],
            "fraction": margin_fraction(w_at, X, y, w_mm)[:, 0], "cosine": cosine(w_at, w_mm)[:, 0],
            "err": rel_error(w_at[-1], ngd(w0, X, y, eta, depths[-1])[-1])}


def margin_convergence(rng: np.random.Generator, *, batch: int = 64, n: int = 30, d: int = 2,
                       etas=(0.25, 1.0), depth: int = 2000, gd_eta: float = 1.0, margin: float = 0.1,
                       record=None) -> dict:
    r"""Margin fraction :math:`\gamma(w_t)/\gamma(w_{mm})` of the looped model over depth, and of GD.

    From :math:`w_0 \sim N(0, I)`; the looped model runs on the query column
    (:func:`ngdformer.looped_trajectory`, exact for the construction); GD runs on the
    logistic loss with step ``gd_eta`` from the same start.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the start.
    batch, n, d : int, tasks B, context size and input dimension.
    etas : sequence of float > 0, the looped model's step sizes.
    depth : int >= 1, the largest depth L (and GD's number of steps).
    gd_eta : float > 0, GD's step size.
    margin : float >= 0, passed to :func:`ngdformer.sample_tasks`.
    record : sequence of int in [0, depth], or None, the depths at which the fraction is returned
        (default: every depth 0..depth).

    Returns
    -------
    result : dict with ``"depths"``, ndarray of int of shape (T,), the recorded depths; ``"fraction"[e]``
        of shape (T, B) for each ``e`` in ``etas``; and ``"gd"`` of shape (T, B), GD's fraction after as
        many steps.
    """
    X, y, _ = sample_tasks(rng, batch, n, d, margin=margin)
    w_mm = max_margin(X, y)
    w0 = rng.standard_normal((batch, d))
    depths = np.arange(depth + 1) if record is None else np.asarray(record, dtype=int)
    fraction = {}
    for e in etas:
        traj = looped_trajectory(embed(X, y, w0), *ngd_weights(d, e), n, depth)  # (depth + 1, B, d)
        fraction[e] = margin_fraction(traj[depths], X, y, w_mm)  # (T, B)
    w_gd = gd(w0, X, y, gd_eta, depth, loss="logistic")[depths]
    return {"depths": depths, "fraction": fraction, "gd": margin_fraction(w_gd, X, y, w_mm)}


def one_long_step(rng: np.random.Generator, *, batch: int = 64, n: int = 40, d: int = 10,
                  eta: float = 0.25, depth: int = 8) -> float:
    r"""Are ``depth`` NGD steps of size ``eta`` one step of size ``depth * eta``? Their relative difference.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the start :math:`w_0 \sim N(0, I)`.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the small step size.
    depth : int >= 1, the number L of small steps.

    Returns
    -------
    diff : float, :func:`ngdformer.rel_error` of :math:`\mathrm{NGD}_\eta^{\circ L}(w_0)` against
        :math:`\mathrm{NGD}_{L\eta}(w_0)` over the batch.
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = rng.standard_normal((batch, d))
    return rel_error(ngd(w0, X, y, eta, depth)[-1], ngd(w0, X, y, depth * eta, 1)[-1])
