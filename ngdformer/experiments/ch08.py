r"""Chapter 08's experiments: a looped model trained from scratch (paper Figs. 5 and 7).

Each function takes an explicit ``np.random.Generator``, prints nothing and returns plain
numbers, arrays or dicts of them. The chapter prints what they return; the tests
(``tests/test_experiments_ch08.py``) check the chapter's claims about them on several seeds.

- :func:`structured_layer`, :func:`structured_iterate`: the layer with only :math:`W_{12} = -c_1 I`,
  :math:`V_{21} = c_2 I`, and its iterate computed by NGD (the answer key of exercise 3).
- :func:`gradient_check`: the end loss's hand-derived gradient against central differences.
- :func:`rescaling_error`: that layer looped L times against :math:`\mathrm{NGD}_{c_1 c_2}` divided by :math:`c_1`.
- :func:`same_product`: two such layers with the same product :math:`c_1 c_2`.
- :func:`train_depths`: looped models of several depths trained end to end on
  :math:`\tfrac12\|w_L - w^*\|^2`; :func:`training_summary` reads the claimed numbers off them.
- :func:`block_report`: the size of each d x d block of a trained layer.
- :func:`compare_with_ngd`: the trained models against NGD on held-out tasks.
- :func:`ngd_target_runs`: looped models supervised by the L-step NGD iterate (paper Fig. 5's
  two settings :math:`\alpha = \eta`).
"""

from __future__ import annotations

import numpy as np

from ..construction import context_is_inert, looped_forward
from ..directions import angle
from ..gradcheck import check_directions, rel_error
from ..looped_training import looped_batch, looped_loss, train_looped
from ..metrics import cosine, normalized_difference, relative_difference
from ..ood import transformer_iterates
from ..optim import cosine_lr
from ..solvers import max_margin, ngd
from ..tasks import embed, read_weights, sample_tasks
from ..training import block, block_scales, from_blocks

BLOCKS = ("W11", "W12", "W21", "W22", "V11", "V12", "V21", "V22")


def structured_layer(c1: float, c2: float, d: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The layer with :math:`W_{12} = -c_1 I`, :math:`V_{21} = c_2 I` and every other block zero.

    Parameters
    ----------
    c1 : float, the score scale.
    c2 : float, the step of each application.
    d : int, the input dimension.

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    """
    return from_blocks((-c1 * np.eye(d), np.zeros((d, d)), c2 * np.eye(d)), d)


def structured_iterate(X, y, w0, c1: float, c2: float, depth: int) -> np.ndarray:
    r"""The iterate :math:`w_L` of :func:`structured_layer` ``(c1, c2)`` looped L times, computed by NGD (chapter 08).

    In the rescaled iterate :math:`\tilde w = c_1 w` one application is an NGD step with step
    :math:`c_1 c_2`, so

    .. math:: w_L = \mathrm{NGD}^{L}_{\eta = c_1 c_2}(c_1 w_0) / c_1 .

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    w0 : ndarray of shape (..., d), the starting iterate.
    c1 : float > 0, the score scale.
    c2 : float > 0, the step of each application.
    depth : int >= 0, number of applications L.

    Returns
    -------
    w_L : ndarray of shape (..., d)

    Examples
    --------
    >>> X, y, _ = sample_tasks(np.random.default_rng(0), 2, 8, 3)
    >>> w0 = np.ones((2, 3))
    >>> W, V = structured_layer(1.7, 0.3, 3)
    >>> w_tf = read_weights(looped_forward(embed(X, y, w0), W, V, 8, 4))
    >>> bool(np.allclose(w_tf, structured_iterate(X, y, w0, 1.7, 0.3, 4)))
    True
    """
    return ngd(c1 * np.asarray(w0, dtype=float), X, y, c1 * c2, depth)[-1] / c1


def gradient_check(rng: np.random.Generator, *, batch: int = 4, n: int = 6, d: int = 2, depth: int = 3,
                   scale: float = 0.3, directions: int = 5) -> dict:
    r"""Central differences against the hand-derived gradient of the end loss :math:`J(W, V)`.

    The weights are random, entries :math:`N(0, \mathrm{scale}^2)`; the loss is
    :func:`ngdformer.looped_training.looped_loss` with objective ``"w_star"``.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, the weights and the directions.
    batch : int, number of tasks B.
    n : int, context size.
    d : int, input dimension.
    depth : int, number of applications L.
    scale : float, standard deviation of the weights' entries.
    directions : int, random unit directions per weight matrix.

    Returns
    -------
    dict with ``num_W``, ``ana_W``, ``num_V``, ``ana_V``: ndarrays of shape (directions,), the
    numeric and analytic directional derivatives (for :func:`ngdformer.assert_gradients_close`).
    """
    Z, targets = looped_batch(rng, batch, n, d, "w_star")  # Z (B, 2d, n + 1)
    W, V = scale * rng.standard_normal((2, 2 * d, 2 * d))
    _, dW, dV = looped_loss(W, V, Z, depth, "w_star", **targets)
    num_W, ana_W = check_directions(lambda w: looped_loss(w, V, Z, depth, "w_star", **targets)[0], W, dW, rng,
                                    directions=directions)
    num_V, ana_V = check_directions(lambda v: looped_loss(W, v, Z, depth, "w_star", **targets)[0], V, dV, rng,
                                    directions=directions)
    return dict(num_W=num_W, ana_W=ana_W, num_V=num_V, ana_V=ana_V)


def rescaling_error(rng: np.random.Generator, *, batch: int = 256, n: int = 20, d: int = 5, c1: float = 1.7,
                    c2: float = 0.3, depth: int = 10) -> float:
    r"""Relative error between the structured layer looped L times and :math:`\mathrm{NGD}_{c_1 c_2} / c_1`.

    .. math:: w_L = \mathrm{NGD}^{L}_{\eta = c_1 c_2}(0) / c_1 \quad (w_0 = 0)

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks.
    batch : int, number of tasks B.
    n : int, context size.
    d : int, input dimension.
    c1, c2 : float, the scales of :func:`structured_layer`.
    depth : int, number of applications L.

    Returns
    -------
    err : float, :func:`ngdformer.rel_error` of the two (B, d) iterates.
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = np.zeros((batch, d))
    W, V = structured_layer(c1, c2, d)
    w_tf = read_weights(looped_forward(embed(X, y, w0), W, V, n, depth))
    return rel_error(w_tf, structured_iterate(X, y, w0, c1, c2, depth))


def same_product(rng: np.random.Generator, pairs=((1.7, 0.3), (0.85, 0.6)), *, batch: int = 256, n: int = 20,
                 d: int = 5, depth: int = 10) -> dict:
    r"""Two structured layers with the same product :math:`c_1 c_2`, looped from :math:`w_0 = 0` on the same tasks.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks.
    pairs : two (c1, c2) pairs, the scales of :func:`structured_layer`.
    batch : int, number of tasks B.
    n : int, context size.
    d : int, input dimension.
    depth : int, number of applications L.

    Returns
    -------
    dict of floats: ``diff`` (the largest normalized difference between the two layers' :math:`w_L` over the tasks),
    ``ratio_min``, ``ratio_max`` (the smallest and largest length ratio :math:`\|w_L'\| / \|w_L\|`, second layer
    over first).
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    Z = embed(X, y, np.zeros((batch, d)))
    u, v = (read_weights(looped_forward(Z, *structured_layer(c1, c2, d), n, depth)) for c1, c2 in pairs)  # (B, d)
    ratio = np.linalg.norm(v, axis=-1) / np.linalg.norm(u, axis=-1)
    return dict(diff=float(normalized_difference(u, v).max()), ratio_min=float(ratio.min()),
                ratio_max=float(ratio.max()))


def train_depths(rng: np.random.Generator, plan: dict, *, n: int = 20, d: int = 5, batch: int = 16) -> dict:
    r"""Train one looped model per depth end to end on :math:`J = \frac1B\sum_b \tfrac12\|w_L - w^*\|^2`.

    Each model starts at :math:`N(0, 0.01^2)` entries and runs Adam on fresh tasks every iteration,
    with :math:`w_0 = 0` and a cosine schedule from its learning rate down to 0 (:func:`ngdformer.train_looped`).

    Parameters
    ----------
    rng : np.random.Generator, the only source of randomness (the models are trained in the order of ``plan``).
    plan : dict, depth L (int) -> (iterations, lr): the number of Adam iterations and the initial learning rate.
    n : int, context size.
    d : int, input dimension.
    batch : int, tasks per iteration.

    Returns
    -------
    models : dict, L -> (W, V, history) as returned by :func:`ngdformer.train_looped`; W, V of shape (2d, 2d).
    """
    return {L: train_looped(rng, n=n, d=d, depth=L, iterations=iterations, batch=batch, lr=lr, quiet=True)
            for L, (iterations, lr) in plan.items()}


def training_summary(history: dict, *, first: int = 10, last: int = 50) -> dict:
    """The numbers the chapter reads off one training history.

    Parameters
    ----------
    history : dict from :func:`ngdformer.train_looped`: ndarrays ``loss``, ``c1``, ``c2``, ``w12_off``, ``v21_off``
        of shape (T,).
    first : int, iterations averaged for the starting loss.
    last : int, iterations averaged for the final loss.

    Returns
    -------
    dict of floats: ``loss_start`` and ``loss_end`` (means of the first and last batch losses), ``c1_first``,
    ``c2_first`` (after the first update), ``c1``, ``c2``, ``w12_off``, ``v21_off`` (after the last update).
    """
    return dict(loss_start=float(history["loss"][:first].mean()), loss_end=float(history["loss"][-last:].mean()),
                c1_first=float(history["c1"][0]), c2_first=float(history["c2"][0]),
                c1=float(history["c1"][-1]), c2=float(history["c2"][-1]),
                w12_off=float(history["w12_off"][-1]), v21_off=float(history["v21_off"][-1]))


def block_report(W, V) -> dict:
    """Frobenius norm and trace of each d x d block of a layer, and whether its context columns are inert.

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d)

    Returns
    -------
    dict with ``norm`` and ``trace`` (dicts block name "W11" .. "V22" -> float), ``w12_diag_max``
    (the largest diagonal entry of :math:`W_{12}`) and ``inert`` (:func:`ngdformer.context_is_inert`).
    """
    mats = {b: block(W if b[0] == "W" else V, b) for b in BLOCKS}
    return dict(norm={b: float(np.linalg.norm(M)) for b, M in mats.items()},
                trace={b: float(np.trace(M)) for b, M in mats.items()},
                w12_diag_max=float(np.diag(mats["W12"]).max()), inert=context_is_inert(W, V))


def compare_with_ngd(rng: np.random.Generator, models: dict, *, n: int = 20, d: int = 5, batch: int = 256,
                     eta_grid=np.geomspace(0.05, 5, 25)) -> dict:
    r"""The trained looped models against NGD on fresh tasks, :math:`w_0 = 0`.

    For each depth L: the trained model's :math:`w_L` (u), NGD with the learned step
    :math:`c_1 c_2` (v), and the best constant-step NGD on a grid, chosen on these same tasks.

    Parameters
    ----------
    rng : np.random.Generator, draws the evaluation tasks.
    models : dict, L -> (W, V, history) from :func:`train_depths`.
    n : int, context size.
    d : int, input dimension.
    batch : int, number of evaluation tasks.
    eta_grid : ndarray of shape (G,), the step sizes of the best-NGD baseline.

    Returns
    -------
    results : dict, L -> dict of floats: ``eta`` (= c1 c2), ``cos_tf``, ``cos_ngd``, ``cos_best`` (mean cosines
        to w*), ``eta_best``, ``diff`` (mean normalized difference of u and v), ``angle_deg`` (mean angle between
        u and v, degrees), ``norm`` (mean length of u).
    cos_mm : float, the mean cosine of the max-margin direction to w* on the same tasks.
    """
    X, y, w_star = sample_tasks(rng, batch, n, d)
    w0 = np.zeros((batch, d))
    results = {}
    for L, (W, V, hist) in models.items():
        c1, c2 = block_scales(W, V)
        u = transformer_iterates(W, V, X, y, w0, [L])[-1]  # (B, d)
        v = ngd(w0, X, y, c1 * c2, L)[-1]  # (B, d)
        best = [cosine(ngd(w0, X, y, e, L)[-1], w_star).mean() for e in eta_grid]
        results[L] = dict(eta=c1 * c2, cos_tf=float(cosine(u, w_star).mean()), cos_ngd=float(cosine(v, w_star).mean()),
                          cos_best=float(max(best)), eta_best=float(eta_grid[int(np.argmax(best))]),
                          diff=float(normalized_difference(u, v).mean()),
                          angle_deg=float(np.degrees(angle(u, v)).mean()),
                          norm=float(np.linalg.norm(u, axis=-1).mean()))
    return results, float(cosine(max_margin(X, y), w_star).mean())


def ngd_target_runs(rng: np.random.Generator, *, etas=(0.5, 1.0), depth: int = 5, n: int = 20, d: int = 5,
                    iterations: int = 1500, batch: int = 32, lr: float = 0.02, sigma0: float = 0.5,
                    eval_batch: int = 256) -> dict:
    r"""Looped models supervised by the L-step NGD iterate (paper Fig. 5, :math:`\alpha` read as :math:`\eta`).

    For each step :math:`\eta`: train on :math:`J = \frac1B\sum_b \tfrac12\|w_L - w_L^{\mathrm{NGD}}(\eta)\|^2` from
    :math:`w_0 \sim N(0, \sigma_0^2 I)` (Adam, cosine schedule from ``lr`` to 0), then on fresh tasks compare the
    trained model and its projection :func:`structured_layer` ``(c1, c2)`` with their target.

    Parameters
    ----------
    rng : np.random.Generator, the only source of randomness.
    etas : sequence of float > 0, the NGD steps of the targets.
    depth : int, number of applications L.
    n : int, context size.
    d : int, input dimension.
    iterations : int, Adam iterations per run.
    batch : int, tasks per iteration.
    lr : float, the initial learning rate.
    sigma0 : float, scale of the starting iterates, in training and evaluation.
    eval_batch : int, number of evaluation tasks.

    Returns
    -------
    runs : dict, eta -> dict with ``hist`` (the history of :func:`ngdformer.train_looped`), ``lr`` (ndarray of shape
        (iterations,), the learning rate of each iteration) and floats ``c1``, ``c2`` (final), ``rel`` and
        ``rel_proj`` (the mean relative difference :math:`\|u - v\| / \|v\|` of the trained model's and of the
        projection's :math:`w_L` from the target :math:`v`), ``diff`` (the mean normalized difference of the trained
        model's :math:`w_L` from the target).
    """
    runs = {}
    for eta in etas:
        W, V, hist = train_looped(rng, n=n, d=d, depth=depth, iterations=iterations, batch=batch, lr=lr,
                                  objective="ngd", eta=eta, sigma0=sigma0, quiet=True)
        X, y, _ = sample_tasks(rng, eval_batch, n, d)
        w0 = sigma0 * rng.standard_normal((eval_batch, d))
        u = transformer_iterates(W, V, X, y, w0, [depth])[-1]  # (B, d) the trained model
        v = ngd(w0, X, y, eta, depth)[-1]  # (B, d) its target
        c1, c2 = block_scales(W, V)
        u_p = transformer_iterates(*structured_layer(c1, c2, d), X, y, w0, [depth])[-1]
        runs[eta] = dict(hist=hist, lr=np.array([cosine_lr(lr, t, iterations) for t in range(iterations)]),
                         c1=c1, c2=c2, rel=float(relative_difference(u, v).mean()),
                         rel_proj=float(relative_difference(u_p, v).mean()),
                         diff=float(normalized_difference(u, v).mean()))
    return runs
