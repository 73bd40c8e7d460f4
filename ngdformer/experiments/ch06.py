r"""Chapter 06's experiments: training one layer on one-step NGD targets (paper Figs. 3-4).

Each function takes an explicit ``np.random.Generator``, prints nothing and returns plain
numbers and arrays; ``tests/test_experiments_ch06.py`` checks the chapter's claims about
them on several seeds.
"""

from __future__ import annotations

import numpy as np

from ..construction import context_is_inert, ngd_weights
from ..gradcheck import check_directions
from ..losses import ngd_coefficients
from ..metrics import cosine, normalized_difference
from ..ood import transformer_iterates
from ..solvers import ngd
from ..tasks import sample_tasks
from ..training import (block, init_weights, off_identity, one_step_batch, one_step_loss,
                        train_one_step_layer)

#: The paper's (n, d) settings of Figs. 3-4.
PAPER_SETTINGS = ((60, 20), (100, 25), (150, 30))
#: The two NGD step sizes taught (the paper's alpha, read as eta).
ETAS = (0.5, 1.0)
#: Blocks whose one-step gradient is exactly zero for every (W, V).
UNEXCITED = ("W11", "W21", "W22", "V12", "V22")


def _get(W, V, name: str) -> np.ndarray:
    return block(W if name[0] == "W" else V, name)


def gradient_check(rng: np.random.Generator, *, n: int = 8, d: int = 3, eta: float = 0.5, batch: int = 16,
                   scale: float = 0.5, directions: int = 5) -> dict:
    r"""The one-step loss and its hand-written gradient at a random (W, V), checked by central differences.

    Parameters
    ----------
    rng : np.random.Generator, draws the batch, the point (W, V) and the directions
    n, d : int, context size and input dimension
    eta : float > 0, the NGD step of the targets
    batch : int, tasks in the batch
    scale : float > 0, standard deviation of the entries of the random W, V (all blocks non-zero)
    directions : int, random directions of the check

    Returns
    -------
    result : dict with
        ``J`` (float, the loss at the random point), ``J_star`` (float, the loss at (W*, V*)),
        ``zero_grad`` (dict block name -> largest |entry| of the gradient in that unexcited block),
        ``num_W``, ``ana_W``, ``num_V``, ``ana_V`` (ndarrays of shape (directions,): numeric and
        analytic directional derivatives, for :func:`ngdformer.assert_gradients_close`)
    """
    Z, target = one_step_batch(rng, batch, n, d, eta)  # Z (B, 2d, n + 1), target (B, 2d)
    W, V = scale * rng.standard_normal((2, 2 * d, 2 * d))
    J, dW, dV = one_step_loss(W, V, Z, target)
    num_W, ana_W = check_directions(lambda w: one_step_loss(w, V, Z, target)[0], W, dW, rng, directions)
    num_V, ana_V = check_directions(lambda v: one_step_loss(W, v, Z, target)[0], V, dV, rng, directions)
    zero_grad = {name: float(np.abs(_get(dW, dV, name)).max()) for name in UNEXCITED}
    J_star = one_step_loss(*ngd_weights(d, eta), Z, target)[0]
    return dict(J=J, J_star=J_star, zero_grad=zero_grad, num_W=num_W, ana_W=ana_W, num_V=num_V, ana_V=ana_V)


def paper_runs(rng: np.random.Generator, settings=PAPER_SETTINGS, etas=ETAS, **recipe) -> dict:
    r"""Train one layer from zero for every (n, d) in ``settings`` and every eta (the chapter's recipe).

    Parameters
    ----------
    rng : np.random.Generator, shared by the runs in order
    settings : sequence of (n, d) pairs
    etas : sequence of float > 0
    **recipe : keyword arguments of :func:`ngdformer.train_one_step_layer` (default: its defaults,
        the chapter's recipe: Adam, lr 0.02 cosine-decayed to 0, batch 32, 500 iterations,
        sigma0 = 1/sqrt(d), zero start)

    Returns
    -------
    runs : dict (n, d, eta) -> (W, V, history), W and V of shape (2d, 2d), history as returned by
        :func:`ngdformer.train_one_step_layer`
    """
    recipe = dict(recipe, quiet=True)
    return {(n, d, eta): train_one_step_layer(rng, n=n, d=d, eta=eta, **recipe)
            for n, d in settings for eta in etas}


def run_summary(W, V, history: dict, eta: float) -> dict:
    r"""The numbers the chapter reads off one training run.

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d), the trained layer
    history : dict, from :func:`ngdformer.train_one_step_layer`
    eta : float > 0, the step size it was taught

    Returns
    -------
    summary : dict with
        ``dist`` (final relative distance to (W*, V*)), ``dist_80`` (the same at 80% of training),
        ``loss_start`` (mean loss of the first 5 iterations), ``loss_end`` (mean of the last 20),
        ``c1_err`` = |c1 - 1|, ``c2_err`` = |c2 - eta|, ``off_W12``, ``off_V21`` (:func:`off_identity`),
        ``err_W``, ``err_V`` (largest |entry| of W - W*, V - V*), ``zeros_kept`` (bool: the five
        unexcited blocks and V11 are exactly 0.0), ``inert`` (bool, :func:`context_is_inert`)
    """
    loss, T = history["loss"], len(history["loss"])
    Ws, Vs = ngd_weights(W.shape[-1] // 2, eta)
    return dict(dist=float(history["dist"][-1]), dist_80=float(history["dist"][int(0.8 * T)]),
                loss_start=float(loss[:5].mean()), loss_end=float(loss[-20:].mean()),
                c1_err=abs(float(history["c1"][-1]) - 1.0), c2_err=abs(float(history["c2"][-1]) - eta),
                off_W12=off_identity(block(W, "12")), off_V21=off_identity(block(V, "21")),
                err_W=float(np.abs(W - Ws).max()), err_V=float(np.abs(V - Vs).max()),
                zeros_kept=all(np.all(_get(W, V, name) == 0.0) for name in UNEXCITED + ("V11",)),
                inert=bool(context_is_inert(W, V)))


def sigma0_contrast(rng: np.random.Generator, *, n: int = 60, d: int = 30, eta: float = 1.0,
                    sigma0: float = 1.0, **recipe) -> tuple[np.ndarray, np.ndarray, dict]:
    r"""The recipe with starting iterates of length about :math:`\sigma_0\sqrt d` instead of 1.

    Parameters
    ----------
    rng : np.random.Generator
    n, d : int, context size and input dimension
    eta : float > 0
    sigma0 : float > 0, scale of :math:`w_0 \sim N(0, \sigma_0^2 I_d)`
    **recipe : other keyword arguments of :func:`ngdformer.train_one_step_layer`

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    history : dict, that of :func:`ngdformer.train_one_step_layer`
    """
    return train_one_step_layer(rng, n=n, d=d, eta=eta, sigma0=sigma0, quiet=True, **recipe)


def softmax_sharpness(rng: np.random.Generator, *, n: int, d: int, sigma0: float, tasks: int = 1000) -> dict:
    r"""How concentrated the NGD target's softmax weights :math:`p(w_0) = \mathrm{softmax}(-m(w_0))` are.

    The starting iterates are :math:`w_0 \sim N(0, \sigma_0^2 I_d)`, as in training; the margins
    :math:`m_i(w_0)` grow with :math:`\|w_0\| \approx \sigma_0 \sqrt d`, and so does the concentration.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the starting iterates
    n, d : int, context size and input dimension
    sigma0 : float > 0, scale of the starting iterate
    tasks : int, number of tasks averaged over

    Returns
    -------
    sharpness : dict with ``max_p`` (mean over tasks of :math:`\max_i p_i`, in [1/n, 1]) and
        ``effective_n`` (mean over tasks of :math:`1 / \sum_i p_i^2`, in [1, n]: how many examples
        share the weight)
    """
    X, y, _ = sample_tasks(rng, tasks, n, d)
    p = ngd_coefficients(sigma0 * rng.standard_normal((tasks, d)), X, y)  # (tasks, n)
    return dict(max_p=float(p.max(-1).mean()), effective_n=float((1.0 / np.sum(p * p, axis=-1)).mean()))


def zero_vs_random(rng: np.random.Generator, zero_run, *, n: int = 60, d: int = 20, eta: float = 0.5,
                   init_scale: float = 0.1, tasks: int = 64, depth: int = 30, **recipe) -> dict:
    r"""Train from a random start, then loop it, the zero-start layer and the construction against NGD.

    Parameters
    ----------
    rng : np.random.Generator, draws the random run's seed, the test tasks and the starting iterates
    zero_run : tuple (W, V, history), a zero-start run at the same (n, d, eta) (from :func:`paper_runs`)
    n, d : int, context size and input dimension
    eta : float > 0
    init_scale : float > 0, standard deviation of the random start's entries
    tasks : int, test tasks of the looped comparison
    depth : int, largest depth t of the looped comparison
    **recipe : other keyword arguments of :func:`ngdformer.train_one_step_layer`

    Returns
    -------
    result : dict with
        ``W_init``, ``V_init``, ``W_rand``, ``V_rand`` (ndarrays (2d, 2d): the random start and
        the trained layer), ``h_rand`` (its history), ``kept`` (dict block -> bool: bit-identical
        to the start), ``V11_start``, ``V11_end`` (largest |entry| of V11), ``spread`` (standard
        deviation of the unexcited blocks' entries after training), ``depths`` (ndarray (depth + 1,)),
        ``diff`` (dict model -> ndarray (depth + 1,): mean over tasks of
        :math:`\|u_t/\|u_t\| - v_t/\|v_t\|\|`, NGD's iterate :math:`v_t`), ``cos`` (dict model ->
        mean cosine of :math:`u_{depth}` to :math:`w^*`), ``cos_ngd`` (the same for NGD)
    """
    seed = int(rng.integers(2 ** 63))
    W_init, V_init = init_weights(np.random.default_rng(seed), d, "random", init_scale)
    W_rand, V_rand, h_rand = train_one_step_layer(np.random.default_rng(seed), n=n, d=d, eta=eta, init="random",
                                                  init_scale=init_scale, quiet=True, **recipe)
    kept = {name: bool(np.array_equal(_get(W_rand, V_rand, name), _get(W_init, V_init, name))) for name in UNEXCITED}
    spread = float(np.std(np.concatenate([_get(W_rand, V_rand, name).ravel() for name in UNEXCITED])))

    X, y, w_star = sample_tasks(rng, tasks, n, d)
    w0 = rng.standard_normal((tasks, d))
    depths = np.arange(depth + 1)
    v = ngd(w0, X, y, eta, depth)  # (depth + 1, tasks, d) NGD iterates
    models = {"construction": ngd_weights(d, eta), "zero start": zero_run[:2], "random start": (W_rand, V_rand)}
    diff, cos = {}, {}
    for name, (W, V) in models.items():
        u = transformer_iterates(W, V, X, y, w0, depths)  # (depth + 1, tasks, d)
        diff[name] = normalized_difference(u, v).mean(-1)  # (depth + 1,)
        cos[name] = float(cosine(u[-1], w_star).mean())
    return dict(W_init=W_init, V_init=V_init, W_rand=W_rand, V_rand=V_rand, h_rand=h_rand, kept=kept,
                V11_start=float(np.abs(block(V_init, "11")).max()), V11_end=float(np.abs(block(V_rand, "11")).max()),
                spread=spread, depths=depths, diff=diff, cos=cos, cos_ngd=float(cosine(v[-1], w_star).mean()))
