r"""A looped model trained from scratch by backpropagation through its loops (chapter 08).

One shared layer (W, V) is applied L times to :math:`Z_0 = \mathrm{embed}(X, y, w_0)`; the
iterate :math:`w_L` is read from the query column and scored on an end task:

.. math::
    \text{"w\_star":}\quad J = \frac1B\sum_b \tfrac12 \|w_L^{(b)} - w^{*(b)}\|^2, \qquad
    \text{"logistic":}\quad J = \frac1B\sum_b \frac1{n_q}\sum_j
        \log(1 + e^{-\tilde y_j \langle w_L^{(b)}, \tilde x_j\rangle}),
    \qquad \text{"ngd":}\quad J = \frac1B\sum_b \tfrac12 \|w_L^{(b)} - w_L^{\mathrm{NGD}(b)}\|^2

with :math:`(\tilde x_j, \tilde y_j)` fresh query points of the same task, and :math:`w_L^{\mathrm{NGD}}` the
L-step NGD iterate with step :math:`\eta` from the same :math:`w_0` (the paper's Fig. 5 settings
"alpha = 0.5, 1", alpha read as :math:`\eta`). With the first two nothing tells the model to do NGD;
the paper's Fig. 5 tracks whether :math:`W_{12} \to -c_1 I` and :math:`V_{21} \to c_2 I` anyway. From a
random start the context columns are not inert, so the full layer (every column a query) is used.
"""

from __future__ import annotations

import time

import numpy as np

from .checks import MAX_DEPTH, as_float, as_labels, check_flag, check_layer, check_positive, check_size
from .fast import _looped_backward, _looped_with_cache
from .losses import _sigmoid  # unchecked: a diverging run records NaN in its history, not an error
from .optim import _check_choice, _check_fraction, _cosine_lr, _kernel_optimizer
from .solvers import ngd
from .tasks import embed, sample_points, sample_tasks
from .training import Progress, _block, _block_scales, _check_batch, _init_weights, _off_identity

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

    Every array must be finite and the targets of other objectives absent (a ``w_ngd`` given
    with ``objective="w_star"`` is refused rather than silently ignored).
    """
    w = as_float("w", w)
    if w.ndim != 2 or w.shape[-1] == 0:
        raise ValueError(f"w must have shape (B, d) with d >= 1, got shape {w.shape}")
    targets = _check_targets(objective, w.shape[0], w.shape[1],
                             dict(w_star=w_star, X_query=X_query, y_query=y_query, w_ngd=w_ngd))
    return _end_loss(w, objective, **targets)


_NEEDS = {"w_star": ("w_star",), "logistic": ("X_query", "y_query"), "ngd": ("w_ngd",)}


def _check_targets(objective, B: int, d: int, given: dict) -> dict:
    """Validate the targets of ``objective`` for B iterates of length d; return only those, as arrays."""
    _check_choice("objective", objective, OBJECTIVES)
    unknown = sorted(k for k in given if k not in ("w_star", "X_query", "y_query", "w_ngd"))
    if unknown:
        raise ValueError(f"unknown targets {unknown}; the end losses take w_star, X_query and y_query, or w_ngd")
    need = _NEEDS[objective]
    extra = sorted(k for k, v in given.items() if v is not None and k not in need)
    missing = [k for k in need if given.get(k) is None]
    if extra or missing:
        raise ValueError(f"objective {objective!r} needs exactly {need}; "
                         + (f"missing {missing}" if missing else f"got also {extra}"))
    if objective == "logistic":
        Xq = as_float("X_query", given["X_query"], ndim_min=3)
        yq = as_labels(given["y_query"], name="y_query")
        if Xq.ndim != 3 or Xq.shape[0] != B or Xq.shape[2] != d or Xq.shape[1] == 0:
            raise ValueError(f"X_query has shape {Xq.shape}, expected ({B}, n_q, {d}) with n_q >= 1")
        if yq.shape != Xq.shape[:2]:
            raise ValueError(f"y_query has shape {yq.shape}, expected {Xq.shape[:2]} (one label per query point)")
        return {"X_query": Xq, "y_query": yq}
    name = need[0]
    target = as_float(name, given[name])
    if target.shape != (B, d):
        raise ValueError(f"{name} has shape {target.shape}, expected ({B}, {d}), the shape of the iterates w")
    return {name: target}


def _end_loss(w, objective: str, w_star=None, X_query=None, y_query=None, w_ngd=None) -> tuple[float, np.ndarray]:
    """Kernel of :func:`end_loss` on checked input."""
    B = w.shape[0]
    if objective in ("w_star", "ngd"):
        r = w - (w_star if objective == "w_star" else w_ngd)  # (B, d)
        return 0.5 * float(np.sum(r * r)) / B, r / B
    if objective == "logistic":
        m = y_query * np.einsum("bnd,bd->bn", X_query, w)  # (B, n_q) margins on the query points
        J = float(np.mean(np.logaddexp(0.0, -m)))
        dm = -_sigmoid(-m) / m.size  # dJ/dm
        return J, np.einsum("bn,bnd->bd", dm * y_query, X_query)
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")  # pragma: no cover - checked


def looped_loss(W, V, Z, depth: int, objective: str, **targets) -> tuple[float, np.ndarray, np.ndarray]:
    r"""End-task loss of the L-loop model and its gradients with respect to the shared weights.

    Forward: :math:`Z_L = f^{\circ L}(Z_0)`, :math:`w_L = (Z_L)_{d:, N}`; backward through the loops
    with :func:`ngdformer.looped_backward` (each application's dW, dV added up), on the
    fast kernels of :mod:`ngdformer.fast`.

    Parameters
    ----------
    W : ndarray of shape (D, D), the shared score weights.
    V : ndarray of shape (D, D), the shared value weights.
    Z : ndarray of shape (B, D, N), the embedded tasks :math:`Z_0`, every column a query.
    depth : int, 1 <= depth <= ``MAX_DEPTH``, number of applications L.
    objective : {"w_star", "logistic", "ngd"}, the end task, as in :func:`end_loss`.
    **targets : the targets :func:`end_loss` needs for ``objective`` (``w_star``, or ``X_query``
        and ``y_query``, or ``w_ngd``).

    Returns
    -------
    J : float, the end-task loss.
    dW : ndarray of shape (D, D), :math:`\partial J / \partial W`, summed over the L applications.
    dV : ndarray of shape (D, D), :math:`\partial J / \partial V`, summed over the L applications.
    """
    Z = as_float("Z", Z, ndim_min=2)
    if Z.ndim != 3:
        raise ValueError(f"Z has shape {Z.shape}, expected a batch of tasks of shape (B, D, N)")
    Z, W, V = check_layer(Z, W, V, Z.shape[-1] - 1)
    check_positive("depth", depth, integer=True, maximum=MAX_DEPTH)
    B, D, N = Z.shape
    check_size("the caches of the loops", (depth, B, N, 3 * D + N))
    targets = _check_targets(objective, B, D // 2, targets)
    return _looped_loss(W, V, Z, depth, objective, **targets)


def _looped_loss(W, V, Z, depth: int, objective: str, **targets) -> tuple[float, np.ndarray, np.ndarray]:
    """Kernel of :func:`looped_loss` on checked input (the trainer's batches from :func:`_looped_batch`)."""
    D, N = Z.shape[-2:]
    ZL, caches = _looped_with_cache(Z, W, V, N - 1, depth)
    J, dw = _end_loss(ZL[..., D // 2:, -1], objective, **targets)
    dZL = np.zeros_like(ZL)
    dZL[..., D // 2:, -1] = dw
    _, dW, dV = _looped_backward(dZL, caches)
    return J, dW, dV


def looped_batch(rng: np.random.Generator, batch: int, n: int, d: int, objective: str, *, sigma0: float = 0.0,
                 n_query: int | None = None, eta: float | None = None,
                 depth: int | None = None) -> tuple[np.ndarray, dict]:
    """Draw tasks, embed them with :math:`w_0 \\sim N(0, \\sigma_0^2 I)`, and the targets for ``objective``.

    ``"ngd"`` needs ``eta`` (> 0) and ``depth`` (L >= 1): its target is
    :func:`ngdformer.ngd` ``(w0, X, y, eta, L)[-1]``.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, w0 and any query points.
    batch : int >= 1, number of tasks B.
    n : int >= 1, context size.
    d : int >= 1, input dimension.
    objective : {"w_star", "logistic", "ngd"}, the end task the targets are for.
    sigma0 : float >= 0, scale of the starting iterate w0 (default 0: w0 = 0).
    n_query : int >= 1 or None, fresh query points per task for ``"logistic"`` (default n).
    eta : float > 0 or None, the NGD step of the ``"ngd"`` target (not used otherwise, but checked if given).
    depth : int in [1, ``MAX_DEPTH``] or None, the number of NGD steps L of the ``"ngd"`` target (not used
        otherwise, but checked if given).

    Returns
    -------
    Z : ndarray of shape (B, D, N), D = 2d, N = n + 1, the embedded tasks.
    targets : dict for :func:`end_loss`: ``w_star`` (B, d), or ``X_query`` (B, n_q, d) and ``y_query`` (B, n_q),
        or ``w_ngd`` (B, d)
    """
    _check_batch(rng, batch, n, d)
    _check_batch_options(objective, sigma0, n_query, eta, depth)
    return _looped_batch(rng, batch, n, d, objective, sigma0=sigma0, n_query=n_query, eta=eta, depth=depth)


def _check_batch_options(objective, sigma0, n_query, eta, depth) -> None:
    """Validate the options of :func:`looped_batch` (the sizes are checked by ``_check_batch``)."""
    _check_choice("objective", objective, OBJECTIVES)
    check_positive("sigma0", sigma0, allow_zero=True)
    if n_query is not None:
        check_positive("n_query", n_query, integer=True)
    if objective == "ngd" and (eta is None or depth is None):
        raise ValueError(f"objective 'ngd' needs eta and depth, got eta={eta!r}, depth={depth!r}")
    if eta is not None:
        check_positive("eta", eta)
    if depth is not None:
        check_positive("depth", depth, integer=True, maximum=MAX_DEPTH)


def _looped_batch(rng, batch: int, n: int, d: int, objective: str, *, sigma0: float, n_query, eta, depth):
    """Kernel of :func:`looped_batch` on checked arguments."""
    X, y, w_star = sample_tasks(rng, batch, n, d)
    w0 = sigma0 * rng.standard_normal((batch, d))
    if objective == "w_star":
        return embed(X, y, w0), {"w_star": w_star}
    if objective == "logistic":
        Xq, yq = sample_points(rng, w_star, n if n_query is None else n_query)
        return embed(X, y, w0), {"X_query": Xq, "y_query": yq}
    return embed(X, y, w0), {"w_ngd": ngd(w0, X, y, eta, depth)[-1]}


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
    n : int >= 1, context size.
    d : int >= 1, input dimension.
    depth : int, 1 <= depth <= ``MAX_DEPTH``, number of applications L.
    iterations : int, 0 <= iterations <= ``MAX_DEPTH``, optimizer steps.
    objective : {"w_star", "logistic", "ngd"}, the end task (see the module docstring; default "w_star").
    batch : int >= 1, tasks per step (default 64).
    lr : float > 0, the (initial) learning rate. Measured (n = 40, d = 10, batch 64,
        3000 cosine iterations): lr 1e-2 trains L = 5 and L = 10; L = 20 diverged at 1e-2 and trains at 5e-3.
    optimizer : {"adam", "sgd"}, see :func:`ngdformer.optim.make_optimizer` (default "adam").
    momentum : float in [0, 1), the SGD momentum (ignored by Adam, but checked).
    init_scale : float > 0, entries of the start are N(0, init_scale^2). Keep it small: with n = 40, d = 10,
        L = 10, a start of 0.1 already blows the iterate up (initial loss ~1e2) and training stalls far
        from NGD (measured: c1 ~ 0.01, cosine 0.85), while 0.01 learns W12 ~ -c1 I, V21 ~ c2 I.
    sigma0 : float >= 0, scale of the starting iterate, :math:`w_0 \sim N(0, \sigma_0^2 I)`.
    n_query : int >= 1 or None, fresh points per task for ``"logistic"`` (default n).
    schedule : ``"cosine"`` (default: iteration t = 0, ..., T - 1 uses :func:`ngdformer.optim.cosine_lr`
        ``(lr, t, T)`` = :math:`\mathrm{lr}\,(1 + \cos(\pi t / T))/2`) or ``"constant"`` learning rate.
        At a constant lr 1e-2 an L = 10 run (n = 40, d = 10) went unstable after ~2400 iterations
        (loss up to ~1e8, measured); the cosine decay lets it settle.
    eta : float > 0 or None, the NGD step of the ``"ngd"`` target :math:`w_L^{\mathrm{NGD}}(\eta)` (required there;
        not used otherwise, but checked if given)
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
    opt = _check_looped_training(rng, n, d, depth, iterations, objective, batch, lr, optimizer, init_scale, sigma0,
                                 n_query, momentum, schedule, eta, quiet)
    theta = _init_weights(rng, d, "random", init_scale)
    state = opt.init(theta)
    hist = {key: np.zeros(iterations) for key in ("loss", "c1", "c2", "w12_off", "v21_off")}
    progress = Progress(iterations, f"looped L={depth}", quiet)
    start = time.perf_counter()
    for t in range(iterations):
        Z, targets = _looped_batch(rng, batch, n, d, objective, sigma0=sigma0, n_query=n_query, eta=eta, depth=depth)
        J, dW, dV = _looped_loss(*theta, Z, depth, objective, **targets)
        lr_t = _cosine_lr(lr, t, iterations) if schedule == "cosine" else lr
        theta, state = opt.update(theta, (dW, dV), state, lr=lr_t)
        W, V = theta
        hist["loss"][t] = J
        hist["c1"][t], hist["c2"][t] = _block_scales(W, V)
        hist["w12_off"][t], hist["v21_off"][t] = _off_identity(_block(W, "12", d)), _off_identity(_block(V, "21", d))
        progress(t, J)
    hist["seconds"] = time.perf_counter() - start
    return theta[0], theta[1], hist


def _check_looped_training(rng, n, d, depth, iterations, objective, batch, lr, optimizer, init_scale, sigma0,
                           n_query, momentum, schedule, eta, quiet):
    """Validate every argument of :func:`train_looped` at once; return the optimizer on its unchecked kernel."""
    _check_batch(rng, batch, n, d)
    check_positive("depth", depth, integer=True, maximum=MAX_DEPTH)
    check_size("the caches of the loops", (depth, batch, n + 1, 3 * 2 * d + n + 1))
    check_positive("iterations", iterations, integer=True, allow_zero=True, maximum=MAX_DEPTH)
    if objective == "ngd" and eta is None:
        raise ValueError("objective 'ngd' needs eta (the NGD step of the target), got eta=None")
    _check_batch_options(objective, sigma0, n_query, eta, depth)
    _check_choice("schedule", schedule, ("cosine", "constant"))
    check_positive("init_scale", init_scale)
    _check_fraction("momentum", momentum)  # checked for Adam too, which ignores it
    check_flag("quiet", quiet)
    _check_choice("optimizer", optimizer, ("adam", "sgd"))
    return _kernel_optimizer(optimizer, **({"lr": lr} if optimizer == "adam" else {"lr": lr, "momentum": momentum}))
