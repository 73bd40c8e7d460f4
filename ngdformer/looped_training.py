r"""A looped model trained from scratch by backpropagation through its loops (chapter 08).

One shared layer (W, V) is applied L times to :math:`Z_0 = \mathrm{embed}(X, y, w_0)`; the
iterate :math:`w_L` is read from the query column and scored on an end task:

.. math::
    \text{"w\_star":}\quad J = \frac1B\sum_b \tfrac12 \|w_L^{(b)} - w^{*(b)}\|^2, \qquad
    \text{"logistic":}\quad J = \frac1B\sum_b \frac1{n_q}\sum_j \log(1 + e^{-\tilde y_j \langle w_L^{(b)}, \tilde x_j\rangle}),
    \qquad \text{"ngd":}\quad J = \frac1B\sum_b \tfrac12 \|w_L^{(b)} - w_L^{\mathrm{NGD}(b)}\|^2

with :math:`(\tilde x_j, \tilde y_j)` fresh query points of the same task, and :math:`w_L^{\mathrm{NGD}}` the
L-step NGD iterate with step :math:`\eta` from the same :math:`w_0` (the paper's Fig. 5 settings
"alpha = 0.5, 1", alpha read as :math:`\eta`). With the first two nothing tells the model to do NGD;
the paper's Fig. 5 tracks whether :math:`W_{12} \to -c_1 I` and :math:`V_{21} \to c_2 I` anyway. From a random start the context columns are not inert,
so the full layer (every column a query) is used.
"""

from __future__ import annotations

import time

import numpy as np

from .checks import check_positive
from .fast import _looped_backward, _looped_with_cache
from .losses import sigmoid
from .optim import cosine_lr, make_optimizer
from .solvers import ngd
from .tasks import embed, sample_points, sample_tasks
from .training import Progress, block, block_scales, init_weights, off_identity

OBJECTIVES = ("w_star", "logistic", "ngd")


def end_loss(w, objective: str, w_star=None, X_query=None, y_query=None, w_ngd=None) -> tuple[float, np.ndarray]:
    r"""End-task loss of the final iterates and its gradient :math:`\partial J / \partial w_L` (chapter 08).

    The three objectives are the equations of the module docstring; each needs its own targets.

    Parameters
    ----------
    w : ndarray of shape (B, d), the model's iterates :math:`w_L`.
    objective : {"w_star", "logistic", "ngd"}, the end task. ``"ngd"`` is the same squared
        loss as ``"w_star"`` with the target :math:`w_L^{\mathrm{NGD}}`.
    w_star : ndarray of shape (B, d) or None, the task directions (needed by ``"w_star"``).
    X_query : ndarray of shape (B, n_q, d) or None, fresh query points (needed by ``"logistic"``).
    y_query : ndarray of shape (B, n_q) or None, their labels in {-1, +1} (needed by ``"logistic"``).
    w_ngd : ndarray of shape (B, d) or None, the L-step NGD iterate (needed by ``"ngd"``).

    Returns
    -------
    J : float, the loss averaged over the batch (and over the query points for ``"logistic"``).
    dw : ndarray of shape (B, d), :math:`\partial J / \partial w_L`.
    """
    B = w.shape[0]
    if objective in ("w_star", "ngd"):
        r = w - (w_star if objective == "w_star" else w_ngd)  # (B, d)
        return 0.5 * float(np.sum(r * r)) / B, r / B
    if objective == "logistic":
        m = y_query * np.einsum("bnd,bd->bn", X_query, w)  # (B, n_q) margins on the query points
        J = float(np.mean(np.logaddexp(0.0, -m)))
        dm = -sigmoid(-m) / m.size  # dJ/dm
        return J, np.einsum("bn,bnd->bd", dm * y_query, X_query)
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


def looped_loss(W, V, Z, depth: int, objective: str, **targets) -> tuple[float, np.ndarray, np.ndarray]:
    r"""End-task loss of the L-loop model and its gradients with respect to the shared weights.

    Forward: :math:`Z_L = f^{\circ L}(Z_0)`, :math:`w_L = (Z_L)_{d:, N}`; backward through the loops
    with :func:`ngdformer.looped_backward` (each application's dW, dV added up), on the
    fast kernels of :mod:`ngdformer.fast`.

    The inputs are not validated again (they come from :func:`looped_batch`).

    Parameters
    ----------
    W : ndarray of shape (D, D), the shared score weights.
    V : ndarray of shape (D, D), the shared value weights.
    Z : ndarray of shape (B, D, N), the embedded tasks :math:`Z_0`, every column a query.
    depth : int >= 1, number of applications L.
    objective : {"w_star", "logistic", "ngd"}, the end task, as in :func:`end_loss`.
    **targets : the targets :func:`end_loss` needs for ``objective`` (``w_star``, or ``X_query``
        and ``y_query``, or ``w_ngd``).

    Returns
    -------
    J : float, the end-task loss.
    dW : ndarray of shape (D, D), :math:`\partial J / \partial W`, summed over the L applications.
    dV : ndarray of shape (D, D), :math:`\partial J / \partial V`, summed over the L applications.
    """
    D, N = Z.shape[-2:]
    ZL, caches = _looped_with_cache(Z, W, V, N - 1, depth)  # Z was made by looped_batch: no re-validation
    J, dw = end_loss(ZL[..., D // 2:, -1], objective, **targets)
    dZL = np.zeros_like(ZL)
    dZL[..., D // 2:, -1] = dw
    _, dW, dV = _looped_backward(dZL, caches)
    return J, dW, dV


def looped_batch(rng: np.random.Generator, batch: int, n: int, d: int, objective: str, *, sigma0: float = 0.0,
                 n_query: int | None = None, eta: float | None = None,
                 depth: int | None = None) -> tuple[np.ndarray, dict]:
    """Draw tasks, embed them with :math:`w_0 \\sim N(0, \\sigma_0^2 I)`, and the targets for ``objective``.

    ``"ngd"`` needs ``eta`` (> 0) and ``depth`` (L >= 1): its target is :func:`ngdformer.ngd` ``(w0, X, y, eta, L)[-1]``.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, w0 and any query points.
    batch : int, number of tasks B.
    n : int, context size.
    d : int, input dimension.
    objective : {"w_star", "logistic", "ngd"}, the end task the targets are for.
    sigma0 : float >= 0, scale of the starting iterate w0 (default 0: w0 = 0).
    n_query : int or None, fresh query points per task for ``"logistic"`` (default n).
    eta : float > 0 or None, the NGD step of the ``"ngd"`` target (ignored otherwise).
    depth : int >= 1 or None, the number of NGD steps L of the ``"ngd"`` target (ignored otherwise).

    Returns
    -------
    Z : ndarray of shape (B, D, N), D = 2d, N = n + 1, the embedded tasks.
    targets : dict for :func:`end_loss`: ``w_star`` (B, d), or ``X_query`` (B, n_q, d) and ``y_query`` (B, n_q),
        or ``w_ngd`` (B, d)
    """
    X, y, w_star = sample_tasks(rng, batch, n, d)
    w0 = sigma0 * rng.standard_normal((batch, d))
    if objective == "w_star":
        return embed(X, y, w0), {"w_star": w_star}
    if objective == "logistic":
        Xq, yq = sample_points(rng, w_star, n if n_query is None else n_query)
        return embed(X, y, w0), {"X_query": Xq, "y_query": yq}
    if objective == "ngd":
        if eta is None or depth is None:
            raise ValueError(f"objective 'ngd' needs eta and depth, got eta={eta!r}, depth={depth!r}")
        check_positive("eta", eta)
        check_positive("depth", depth, integer=True)
        return embed(X, y, w0), {"w_ngd": ngd(w0, X, y, eta, depth)[-1]}
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


def train_looped(rng: np.random.Generator, *, n: int, d: int, depth: int, iterations: int, objective: str = "w_star",
                 batch: int = 64, lr: float = 1e-2, optimizer: str = "adam", init_scale: float = 0.01,
                 sigma0: float = 0.0, n_query: int | None = None, momentum: float = 0.0,
                 schedule: str = "cosine", eta: float | None = None,
                 quiet: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    r"""Train a looped model (one shared layer, ``depth`` applications) from a small random start (chapter 08).

    Every step draws ``batch`` fresh tasks from ``rng``, starts the iterate at
    :math:`w_0 \sim N(0, \sigma_0^2 I)` (default :math:`w_0 = 0`), runs the full layer
    ``depth`` times and backpropagates the end loss (:func:`looped_loss`) through all of
    them. All eight blocks of W and V are trained.

    Parameters
    ----------
    rng : np.random.Generator, the only source of randomness.
    n : int, context size.
    d : int, input dimension.
    depth : int >= 1, number of applications L.
    iterations : int >= 0, optimizer steps.
    objective : {"w_star", "logistic", "ngd"}, the end task (see the module docstring; default "w_star").
    batch : int, tasks per step (default 64).
    lr : float > 0, the (initial) learning rate. Measured (n = 40, d = 10, batch 64,
        3000 cosine iterations): lr 1e-2 trains L = 5 and L = 10; L = 20 diverged at 1e-2 and trains at 5e-3.
    optimizer : {"adam", "sgd"}, see :func:`ngdformer.optim.make_optimizer` (default "adam").
    momentum : float in [0, 1), the SGD momentum (ignored by Adam).
    init_scale : float > 0, entries of the start are N(0, init_scale^2). Keep it small: with n = 40, d = 10,
        L = 10, a start of 0.1 already blows the iterate up (initial loss ~1e2) and training stalls far
        from NGD (measured: c1 ~ 0.01, cosine 0.85), while 0.01 learns W12 ~ -c1 I, V21 ~ c2 I.
    sigma0 : float >= 0, scale of the starting iterate, :math:`w_0 \sim N(0, \sigma_0^2 I)`.
    n_query : int or None, fresh points per task for ``"logistic"`` (default n).
    schedule : ``"cosine"`` (default, :func:`ngdformer.optim.cosine_lr`) or ``"constant"`` learning rate.
        At a constant lr 1e-2 an L = 10 run (n = 40, d = 10) went unstable after ~2400 iterations
        (loss up to ~1e8, measured); the cosine decay lets it settle.
    eta : float > 0, the NGD step of the ``"ngd"`` target :math:`w_L^{\mathrm{NGD}}(\eta)` (required there, ignored otherwise)
    quiet : bool, silence the progress line.

    Returns
    -------
    W : ndarray of shape (D, D), D = 2d, the trained score weights.
    V : ndarray of shape (D, D), the trained value weights.
    history : dict with ndarrays of shape (iterations,): ``loss`` (batch loss before update t), and after
        update t: ``c1``, ``c2`` (:func:`ngdformer.block_scales`), ``w12_off``, ``v21_off``
        (:func:`ngdformer.training.off_identity` of :math:`W_{12}` and :math:`V_{21}`); and ``seconds``,
        a float, the wall time of the loop.
    """
    for name, value in (("n", n), ("d", d), ("batch", batch), ("depth", depth)):
        check_positive(name, value, integer=True)
    check_positive("iterations", iterations, integer=True, allow_zero=True)
    check_positive("sigma0", sigma0, allow_zero=True)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if objective == "ngd":
        if eta is None:
            raise ValueError("objective 'ngd' needs eta (the NGD step of the target), got eta=None")
        check_positive("eta", eta)
    opt = make_optimizer(optimizer, **({"lr": lr} if optimizer == "adam" else {"lr": lr, "momentum": momentum}))
    theta = init_weights(rng, d, "random", init_scale)
    state = opt.init(theta)
    hist = {key: np.zeros(iterations) for key in ("loss", "c1", "c2", "w12_off", "v21_off")}
    progress = Progress(iterations, f"looped L={depth}", quiet)
    start = time.perf_counter()
    for t in range(iterations):
        Z, targets = looped_batch(rng, batch, n, d, objective, sigma0=sigma0, n_query=n_query, eta=eta, depth=depth)
        J, dW, dV = looped_loss(*theta, Z, depth, objective, **targets)
        lr_t = cosine_lr(lr, t, iterations) if schedule == "cosine" else lr
        theta, state = opt.update(theta, (dW, dV), state, lr=lr_t)
        W, V = theta
        hist["loss"][t] = J
        hist["c1"][t], hist["c2"][t] = block_scales(W, V)
        hist["w12_off"][t], hist["v21_off"][t] = off_identity(block(W, "12")), off_identity(block(V, "21"))
        progress(t, J)
    hist["seconds"] = time.perf_counter() - start
    return theta[0], theta[1], hist
