r"""Chapter 10's experiments: which attention learns the max-margin classifier?

Four elementwise layers (:mod:`ngdformer.elementwise`) and the softmax layer, each built to take
one step of a gradient method, looped side by side. Each function takes an explicit
``np.random.Generator``, prints nothing and returns plain numbers and arrays;
``tests/test_experiments_ch10.py`` checks the chapter's claims about them on several seeds.
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_forward
from ..boundaries import margin_fraction
from ..construction import ngd_weights
from ..elementwise import (ACTIVATION_LOSS, ACTIVATIONS, elementwise_attention_forward, elementwise_batch,
                           elementwise_one_step_loss, elementwise_trajectory, gd_weights, train_elementwise_layer)
from ..fast import looped_trajectory
from ..gradcheck import rel_error
from ..losses import LOSSES
from ..metrics import cosine
from ..solvers import gd, gd_step, max_margin, ngd, ngd_step
from ..tasks import embed, read_weights, sample_tasks

#: The five layers of the chapter: the four elementwise activations, then the softmax.
LAYERS = ACTIVATIONS + ("softmax",)

#: The depths at which the race records the iterates (0, then about 6 per decade up to 10^4).
RACE_DEPTHS = np.unique(np.round(np.concatenate([[0.0], np.logspace(0, 4, 25)])).astype(int))


def _trajectory(layer: str, X, y, eta: float, depth: int, n_built: int | None = None) -> np.ndarray:
    """The iterates (depth + 1, B, d) of one constructed layer looped from w0 = 0 on the contexts (X, y)."""
    n, d = X.shape[-2:]
    if layer == "softmax":
        return looped_trajectory(embed(X, y), *ngd_weights(d, eta), n, depth)
    return elementwise_trajectory(embed(X, y), *gd_weights(d, eta, n_built or n), n, depth, layer)


def identity_errors(rng: np.random.Generator, *, shapes=((1, 3, 2), (16, 20, 5), (4, 40, 10)),
                    scales=(0.0, 0.3, 1.0, 3.0), eta: float = 0.5) -> dict:
    r"""Each constructed layer's query iterate against one step of its gradient method.

    For every shape (B, n, d) and scale, tasks from :func:`ngdformer.sample_tasks` and
    :math:`w \sim` ``scale`` :math:`\cdot N(0, I_d)`; the elementwise layer with
    :func:`ngdformer.elementwise.gd_weights` ``(d, eta, n)`` against :func:`ngdformer.gd_step` on
    the matching loss, the softmax layer with :func:`ngdformer.ngd_weights` against
    :func:`ngdformer.ngd_step`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the iterates
    shapes : sequence of (B, n, d)
    scales : sequence of float >= 0, the scales of w
    eta : float > 0

    Returns
    -------
    errors : dict layer -> float, the largest :func:`ngdformer.rel_error` over the shapes and scales
    """
    errors = dict.fromkeys(LAYERS, 0.0)
    for B, n, d in shapes:
        X, y, _ = sample_tasks(rng, B, n, d)
        for scale in scales:
            w = scale * rng.standard_normal((B, d))
            Z = embed(X, y, w)
            for layer in LAYERS:
                if layer == "softmax":
                    out, _ = attention_forward(Z, *ngd_weights(d, eta), n)
                    step = ngd_step(w, X, y, eta)
                else:
                    out, _ = elementwise_attention_forward(Z, *gd_weights(d, eta, n), n, layer)
                    step = gd_step(w, X, y, eta, loss=ACTIVATION_LOSS[layer])
                errors[layer] = max(errors[layer], rel_error(read_weights(out), step))
    return errors


def race(rng: np.random.Generator, *, batch: int = 64, n: int = 40, d: int = 10, eta: float = 0.5,
         depths=RACE_DEPTHS) -> dict:
    r"""The five constructed layers looped from :math:`w_0 = 0` on the same contexts, measured against :math:`w_{mm}`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks
    batch, n, d : int, tasks B, context size and input dimension
    eta : float > 0, the step size of every layer
    depths : increasing sequence of int >= 0, where to record (the loops run to the last)

    Returns
    -------
    result : dict with
        ``depths`` (ndarray (K,)), ``fraction`` and ``cosine`` (dict layer -> ndarray (K, B): the normalized
        margin as a fraction of the max-margin value, :func:`ngdformer.margin_fraction`, and the cosine to
        :math:`w_{mm}`), ``norm`` (dict layer -> ndarray (K, B), :math:`\|w_t\| / \|w_{mm}\|`),
        ``final_loss`` (dict layer -> ndarray (B,), the layer's own loss at the last depth; the
        exponential loss for the softmax layer), ``ls_error`` (float, the largest
        relative distance of the linear layer's last iterate to the least-squares solution
        :math:`w_{ls} = \hat\Sigma^{-1} \frac1n \sum_i y_i x_i`), ``misclassified`` (ndarray (B,) of int, context
        points on the wrong side of :math:`w_{ls}`)
    """
    depths = np.asarray(depths, dtype=int)
    X, y, _ = sample_tasks(rng, batch, n, d)
    w_mm = max_margin(X, y)
    result = {key: {} for key in ("fraction", "cosine", "norm", "final_loss")}
    for layer in LAYERS:
        w = _trajectory(layer, X, y, eta, int(depths[-1]))[depths]  # (K, B, d)
        result["fraction"][layer] = margin_fraction(w, X, y, w_mm)
        result["cosine"][layer] = cosine(w, w_mm)
        result["norm"][layer] = np.linalg.norm(w, axis=-1) / np.linalg.norm(w_mm, axis=-1)
        loss = LOSSES["exp" if layer == "softmax" else ACTIVATION_LOSS[layer]][0]
        result["final_loss"][layer] = loss(w[-1], X, y)
        if layer == "linear":
            w_ls = least_squares(X, y)
            result["ls_error"] = float(np.max(np.linalg.norm(w[-1] - w_ls, axis=-1) / np.linalg.norm(w_ls, axis=-1)))
            result["misclassified"] = np.sum(np.einsum("bnd,bd->bn", X, w_ls) * y <= 0, axis=-1)
    result["depths"] = depths
    return result


def least_squares(X, y) -> np.ndarray:
    r"""The minimiser of the squared loss, :math:`w_{ls} = \hat\Sigma^{-1}\,\frac1n\sum_i y_i x_i`, per task.

    Parameters
    ----------
    X : ndarray of shape (B, n, d), n >= d (so that :math:`\hat\Sigma` is invertible)
    y : ndarray of shape (B, n)

    Returns
    -------
    w_ls : ndarray of shape (B, d)
    """
    n = X.shape[-2]
    second_moment = np.swapaxes(X, -1, -2) @ X / n  # (B, d, d); y_i^2 = 1
    return np.linalg.solve(second_moment, np.einsum("bn,bnd->bd", y, X)[..., None] / n)[..., 0]


def step_limits(X) -> np.ndarray:
    r"""The largest stable GD step on the squared loss of each context: :math:`2 / \lambda_{\max}(\hat\Sigma)`.

    .. math:: \hat\Sigma = \frac1n \sum_i x_i x_i^\top \quad (\text{the loss's Hessian, for every } w)

    Parameters
    ----------
    X : ndarray of shape (..., n, d)

    Returns
    -------
    eta_max : ndarray of shape (...)
    """
    second_moment = np.swapaxes(X, -1, -2) @ X / X.shape[-2]
    return 2.0 / np.linalg.eigvalsh(second_moment)[..., -1]


def context_shift(rng: np.random.Generator, *, n_built: int = 20, ns=(10, 20, 40, 80), d: int = 5,
                  eta: float = 0.5, batch: int = 64, depth: int = 50) -> dict:
    r"""Layers built for ``n_built`` examples, looped on contexts of ``n'`` examples (chapter 10).

    The elementwise layer :func:`ngdformer.elementwise.gd_weights` ``(d, eta, n_built)`` against GD
    with the step :math:`\eta\, n'/n_{\text{built}}` it should take, and against GD with :math:`\eta`
    itself; the softmax layer :func:`ngdformer.ngd_weights` ``(d, eta)`` against NGD with :math:`\eta`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks (new ones for every n')
    n_built : int, the context size the elementwise layers were built for
    ns : sequence of int, the context sizes n' they are looped on
    d : int, input dimension
    eta : float > 0
    batch : int, tasks per context size
    depth : int, applications

    Returns
    -------
    result : dict n' -> dict with ``scaled`` and ``same`` (dict activation -> float: the
        :func:`ngdformer.rel_error` of the layer's trajectory against GD with step
        :math:`\eta n'/n_{\text{built}}`, and with step :math:`\eta`), ``softmax`` (float: the softmax layer
        against NGD), ``unstable`` (int: tasks whose step :math:`\eta n'/n_{\text{built}}` exceeds
        :func:`step_limits`), ``grown`` (int: tasks where the linear layer's last iterate is more than
        100 times as long as :math:`w_{ls}`)
    """
    result = {}
    for n in ns:
        X, y, _ = sample_tasks(rng, batch, n, d)
        w0 = np.zeros((batch, d))
        eta_n = eta * n / n_built
        entry = {"scaled": {}, "same": {}}
        for act in ACTIVATIONS:
            w = _trajectory(act, X, y, eta, depth, n_built=n_built)
            loss = ACTIVATION_LOSS[act]
            with np.errstate(over="ignore", invalid="ignore"):
                entry["scaled"][act] = rel_error(w, gd(w0, X, y, eta_n, depth, loss=loss))
                entry["same"][act] = rel_error(w, gd(w0, X, y, eta, depth, loss=loss))
            if act == "linear":
                grown = np.linalg.norm(w[-1], axis=-1) > 100 * np.linalg.norm(least_squares(X, y), axis=-1)
                entry["grown"] = int(np.sum(grown))
        entry["softmax"] = rel_error(_trajectory("softmax", X, y, eta, depth), ngd(w0, X, y, eta, depth))
        entry["unstable"] = int(np.sum(eta_n > step_limits(X)))
        result[n] = entry
    return result


def step_size_sweep(rng: np.random.Generator, *, batch: int = 64, n: int = 40, d: int = 10,
                    ratios=(0.5, 0.9, 1.1, 1.5), softmax_etas=(1.0, 3.0, 10.0), depth: int = 200) -> dict:
    r"""Linear attention below and above its step-size limit, and the softmax layer at large steps.

    Every context is rescaled, :math:`x_i \leftarrow x_i / \sqrt{\lambda_{\max}(\hat\Sigma)}`, so that its
    limit :math:`2/\lambda_{\max}` is exactly 2 (a rescaling changes neither the labels nor the
    max-margin direction). The linear layer runs at :math:`\eta = 2 r` for each ratio r.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks
    batch, n, d : int, tasks B, context size and input dimension
    ratios : sequence of float > 0, the linear layer's step as a fraction of the limit
    softmax_etas : sequence of float > 0, the softmax layer's steps
    depth : int, applications

    Returns
    -------
    result : dict with ``depths`` (ndarray (depth + 1,)), ``linear`` (dict ratio -> ndarray (depth + 1, B):
        :math:`\|w_t - w_{ls}\| / \|w_{ls}\|`), ``softmax_fraction`` (dict eta -> ndarray (depth + 1, B),
        the margin fraction), ``softmax_growth`` (dict eta -> float, the largest
        :math:`\|w_t\| / (\eta\, t \max_i \|x_i\|)` over t >= 1 and the tasks: at most 1)
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    X = X * np.sqrt(step_limits(X) / 2.0)[:, None, None]  # lambda_max = 1 for every task
    w_ls, w_mm = least_squares(X, y), max_margin(X, y)
    t = np.arange(depth + 1)
    result = {"depths": t, "linear": {}, "softmax_fraction": {}, "softmax_growth": {}}
    for r in ratios:
        w = _trajectory("linear", X, y, 2.0 * r, depth)
        with np.errstate(over="ignore", invalid="ignore"):
            result["linear"][r] = np.linalg.norm(w - w_ls, axis=-1) / np.linalg.norm(w_ls, axis=-1)
    x_max = np.linalg.norm(X, axis=-1).max(axis=-1)  # (B,)
    for eta in softmax_etas:
        w = _trajectory("softmax", X, y, eta, depth)
        result["softmax_fraction"][eta] = margin_fraction(w, X, y, w_mm)
        result["softmax_growth"][eta] = float(np.max(np.linalg.norm(w[1:], axis=-1) / (eta * t[1:, None] * x_max)))
    return result


def training_runs(rng: np.random.Generator, *, n: int = 20, d: int = 5, eta: float = 0.5,
                  activations=ACTIVATIONS, **recipe) -> dict:
    r"""Train one elementwise layer per activation from zero on one-step GD targets (the package's recipe).

    Parameters
    ----------
    rng : np.random.Generator, shared by the runs in order
    n, d : int, context size and input dimension
    eta : float > 0, the GD step taught
    activations : sequence of activation names
    **recipe : other keyword arguments of :func:`ngdformer.elementwise.train_elementwise_layer`

    Returns
    -------
    runs : dict activation -> (W, V, history), as returned by
        :func:`ngdformer.elementwise.train_elementwise_layer`
    """
    recipe = dict(recipe, quiet=True)
    return {act: train_elementwise_layer(rng, n=n, d=d, eta=eta, activation=act, **recipe) for act in activations}


def gradient_tails(rng: np.random.Generator, *, n: int = 20, d: int = 5, eta: float = 0.5, c1: float = 0.9,
                   sigma0s=(None, 0.2), activations=("sigmoid", "exp"), batches: int = 1000,
                   batch: int = 32) -> dict:
    r"""How heavy-tailed the one-step gradient is: per-batch gradient norms on the way to the construction.

    The point is :math:`W_{12} = -c_1 I`, :math:`V_{21} = \frac{\eta}{n} I` (the construction's
    :math:`V`, scores scaled by :math:`c_1`), where every gradient is non-zero; ``batches``
    fresh batches of the training distribution (:func:`ngdformer.elementwise.elementwise_batch`).

    Parameters
    ----------
    rng : np.random.Generator
    n, d : int, context size and input dimension
    eta : float > 0
    c1 : float, the score scale of the point
    sigma0s : sequence of float or None, the scales of w0 (None: the recipe's :math:`1/\sqrt d`)
    activations : sequence of activation names
    batches, batch : int, how many batches, of how many tasks

    Returns
    -------
    tails : dict (activation, sigma0) -> dict with ``median`` and ``max`` (floats: of the per-batch
        gradient norms :math:`\sqrt{\|dW\|^2 + \|dV / n\|^2}`, the norm the optimizer sees: it trains
        :math:`(W, nV)`) and
        ``ratio`` = max / median; sigma0 as given (None for the recipe's)
    """
    W, V = gd_weights(d, eta, n)
    W = c1 * W
    tails = {}
    for act in activations:
        for sigma0 in sigma0s:
            s0 = 1.0 / np.sqrt(d) if sigma0 is None else sigma0
            norms = np.empty(batches)
            for k in range(batches):
                Z, target = elementwise_batch(rng, batch, n, d, eta, act, s0)
                _, dW, dV = elementwise_one_step_loss(W, V, Z, target, act)
                norms[k] = np.sqrt(np.sum(dW ** 2) + np.sum((dV / n) ** 2))  # Adam trains (W, n V)
            med, top = float(np.median(norms)), float(norms.max())
            tails[act, sigma0] = {"median": med, "max": top, "ratio": top / med}
    return tails
