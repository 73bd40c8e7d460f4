r"""Training one attention layer by hand on one-step NGD supervision (chapter 06).

Each step draws fresh tasks and starting iterates :math:`w_0 \sim N(0, \sigma_0^2 I_d)` from the
generator, embeds them as :math:`Z_0`, and fits the query column of one layer to the NGD target:

.. math:: J(W, V) = \frac{1}{B}\sum_b \tfrac12 \big\| f(Z_0^{(b)})_{:, N} - [0;\ w_0^{(b)} +
          \eta \textstyle\sum_i p_i(w_0^{(b)}) y_i x_i] \big\|^2

The loss reads only the query column, so the forward pass is ``query_only``. The task
excites only the blocks :math:`W_{12}, V_{11}, V_{21}` (row block first, 1 = top half);
the other five get exactly zero gradient. ``params="blocks"`` trains just those three
d x d blocks. :func:`block_scales` reads off :math:`c_1 = -\mathrm{tr}(W_{12})/d` and
:math:`c_2 = \mathrm{tr}(V_{21})/d`, which are 1 and eta for the construction.

The training loop validates its arguments once and then calls the kernels of
:mod:`ngdformer.fast` (and the unchecked embedding, NGD step, optimizer step and
helpers below) on the data it made itself.
"""

from __future__ import annotations

import time

import numpy as np

from .checks import (MAX_DEPTH, InputTypeError, as_float, check_flag, check_generator, check_positive, check_size,
                     check_tokens, check_weights)
from .construction import ngd_weights
from .fast import _one_step_loss  # the lean kernel: the query column, dW and dV only
from .optim import _check_choice, _check_fraction, _cosine_lr, _kernel_optimizer
from .solvers import _ngd_step
from .tasks import _embed, sample_tasks

EXCITED = ("W12", "V11", "V21")  # the blocks one-step supervision can move


def block(M, name_or_index, d: int | None = None) -> np.ndarray:
    """The d x d block ``"12"`` (top-right) etc. of a (..., 2d, 2d) matrix; ``name`` like ``"W12"`` also works.

    Parameters
    ----------
    M : ndarray of shape (..., 2d, 2d)
    name_or_index : str or int, the row block then the column block, each 1 or 2 (``"12"``, ``12``,
        ``"W12"`` or ``"V21"``)
    d : int or None, the block size (default: half of ``M``'s last dimension; if given, ``2 d`` must be it)

    Returns
    -------
    B : ndarray of shape (..., d, d), a view into ``M``
    """
    M = np.asarray(M)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2] or M.shape[-1] % 2 or M.shape[-1] == 0:
        raise ValueError(f"M must have shape (..., 2d, 2d) with d >= 1, got shape {M.shape}")
    if isinstance(name_or_index, (bool, np.bool_)) or not isinstance(name_or_index, (str, int, np.integer)):
        raise InputTypeError(f"block name must be a string such as '12' or 'W12' (or the int 12), "
                             f"got {name_or_index!r}")
    rc = str(name_or_index)
    if rc[-2:] not in ("11", "12", "21", "22") or rc[:-2] not in ("", "W", "V"):
        raise ValueError(f"block name must be '11', '12', '21' or '22' (optionally after W or V), "
                         f"got {name_or_index!r}")
    if d is not None and (check_positive("d", d, integer=True) != M.shape[-1] // 2):
        raise ValueError(f"d = {d} does not match M of shape {M.shape}: need 2 d = {M.shape[-1]}")
    return _block(M, rc[-2:], M.shape[-1] // 2)


def _block(M, rc: str, d: int) -> np.ndarray:
    """Kernel of :func:`block`: the block ``rc`` (``"12"`` etc.) of size ``d``."""
    r, c = int(rc[0]) - 1, int(rc[1]) - 1
    return M[..., r * d:(r + 1) * d, c * d:(c + 1) * d]


def _check_pair(W, V) -> tuple[np.ndarray, np.ndarray]:
    """Validate layer weights ``W, V``: finite, both (2d, 2d) with d >= 1."""
    W = as_float("W", W, ndim_min=2)
    D = W.shape[-1]
    if W.ndim != 2 or W.shape[0] != D or D % 2 or D == 0:
        raise ValueError(f"W must have shape (2d, 2d) with d >= 1, got shape {W.shape}")
    return check_weights(W, V, D)


def from_blocks(blocks, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Full (2d, 2d) ``W, V`` from the excited blocks ``(W12, V11, V21)``, every other block zero.

    Parameters
    ----------
    blocks : tuple of three ndarrays of shape (d, d), finite: ``(W12, V11, V21)``
    d : int >= 1, the block size

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    """
    check_positive("d", d, integer=True)
    if not isinstance(blocks, (tuple, list)) or len(blocks) != 3:
        raise ValueError(f"blocks must be the three excited blocks (W12, V11, V21), got {type(blocks).__name__}"
                         f"{' of length ' + str(len(blocks)) if isinstance(blocks, (tuple, list)) else ''}")
    blocks = tuple(as_float(name, b) for name, b in zip(EXCITED, blocks))
    for name, b in zip(EXCITED, blocks):
        if b.shape != (d, d):
            raise ValueError(f"{name} has shape {b.shape}, expected ({d}, {d})")
    return _from_blocks(blocks, d)


def _from_blocks(blocks, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Kernel of :func:`from_blocks`."""
    W, V = np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    W[:d, d:], V[:d, :d], V[d:, :d] = blocks
    return W, V


def to_blocks(W, V) -> tuple:
    """The excited blocks ``(W12, V11, V21)`` of full ``W, V`` (copies).

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d), finite

    Returns
    -------
    blocks : tuple of three ndarrays of shape (d, d), ``(W12, V11, V21)``
    """
    return _to_blocks(*_check_pair(W, V))


def _to_blocks(W, V) -> tuple:
    """Kernel of :func:`to_blocks`."""
    d = W.shape[-1] // 2
    return _block(W, "12", d).copy(), _block(V, "11", d).copy(), _block(V, "21", d).copy()


def block_scales(W, V) -> tuple[float, float]:
    r"""How much of the construction a layer holds: :math:`c_1 = -\mathrm{tr}(W_{12})/d`,
    :math:`c_2 = \mathrm{tr}(V_{21})/d`.

    If :math:`W_{12} = -c_1 I` and :math:`V_{21} = c_2 I`, the layer scales the scores by
    :math:`c_1` and takes a step of size :math:`c_2`; for the construction
    :func:`ngdformer.ngd_weights` ``(d, eta)`` they are 1 and eta. (Not to be confused with
    :func:`ngdformer.ngd_coefficients`, the per-example softmax weights of an NGD step.)

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d), finite

    Returns
    -------
    c1, c2 : float
    """
    return _block_scales(*_check_pair(W, V))


def _block_scales(W, V) -> tuple[float, float]:
    """Kernel of :func:`block_scales`."""
    d = W.shape[-1] // 2
    return float(-np.trace(_block(W, "12", d)) / d), float(np.trace(_block(V, "21", d)) / d)


def off_identity(M) -> float:
    r"""How far a square matrix is from a multiple of the identity.

    .. math:: \|M - \tfrac{\mathrm{tr} M}{d} I\|_F / \|M\|_F

    0 for :math:`cI`, about 1 for a random matrix; 0 for the zero matrix.

    Parameters
    ----------
    M : ndarray of shape (d, d), d >= 1, finite

    Returns
    -------
    ratio : float >= 0
    """
    M = as_float("M", M, ndim_min=2)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"M must be a square matrix of shape (d, d) with d >= 1, got shape {M.shape}")
    return _off_identity(M)


def _off_identity(M) -> float:
    """Kernel of :func:`off_identity`; NaN for a matrix with a non-finite entry (a diverged training run)."""
    M = np.asarray(M, dtype=np.float64)
    if not np.all(np.isfinite(M)):
        return float("nan")
    M = np.ldexp(M, -np.frexp(np.max(np.abs(M)))[1])  # exact rescaling: no overflow in the norms
    norm = np.linalg.norm(M)
    resid = M - np.trace(M) / M.shape[-1] * np.eye(M.shape[-1])
    return float(np.linalg.norm(resid) / norm) if norm > 0 else 0.0


def distance_to_construction(W, V, eta: float) -> float:
    r"""Relative distance :math:`\sqrt{\|W - W^*\|_F^2 + \|V - V^*\|_F^2} / \sqrt{\|W^*\|_F^2 + \|V^*\|_F^2}`.

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d), finite
    eta : float > 0, the step size of the construction :func:`ngdformer.ngd_weights` ``(d, eta)``

    Returns
    -------
    distance : float >= 0
    """
    W, V = _check_pair(W, V)
    check_positive("eta", eta)
    return _rel((W, V), ngd_weights(W.shape[-1] // 2, eta))


def one_step_batch(rng: np.random.Generator, batch: int, n: int, d: int, eta: float,
                   sigma0: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw a training batch: tokens :math:`Z_0` and the query-column targets :math:`[0;\ \mathrm{NGD}_\eta(w_0)]`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and then :math:`w_0`
    batch, n, d : int >= 1, number of tasks B, context size and input dimension
    eta : float > 0, the NGD step of the targets
    sigma0 : float >= 0, scale of the starting iterate :math:`w_0 \sim N(0, \sigma_0^2 I)` (default 1)

    Returns
    -------
    Z : ndarray of shape (B, 2d, n + 1), tasks from :func:`ngdformer.sample_tasks`, :math:`w_0 \sim N(0, \sigma_0^2 I)`
    target : ndarray of shape (B, 2d)
    """
    _check_batch(rng, batch, n, d)
    check_positive("eta", eta)
    check_positive("sigma0", sigma0, allow_zero=True)
    return _one_step_batch(rng, batch, n, d, eta, sigma0)


def _check_batch(rng, batch, n, d) -> None:
    """Validate the generator and the sizes of a batch of tasks, refusing one too large to allocate."""
    check_generator(rng)
    for name, value in (("batch", batch), ("n", n), ("d", d)):
        check_positive(name, value, integer=True)
    check_size("Z", (batch, 2 * d, n + 1))


def _one_step_batch(rng, batch: int, n: int, d: int, eta: float, sigma0: float):
    """Kernel of :func:`one_step_batch` on checked arguments."""
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = sigma0 * rng.standard_normal((batch, d))
    target = np.zeros((batch, 2 * d))
    target[:, d:] = _ngd_step(w0, X, y, eta)  # sampled data: nothing to check
    return _embed(w0, X, y), target


def one_step_loss(W, V, Z, target) -> tuple[float, np.ndarray, np.ndarray]:
    r"""One-step supervision loss and its gradients (chapter 06).

    .. math:: J = \frac1B \sum_b \tfrac12\|o_b - t_b\|^2,\qquad o = f(Z)_{:, N},\qquad
              \frac{\partial J}{\partial o_b} = (o_b - t_b)/B

    Parameters
    ----------
    W, V : ndarray of shape (D, D), finite
    Z : ndarray of shape (B, D, N) (or more leading batch dimensions, B = their product), context in
        the first N - 1 columns; a single task is the batch ``Z[None]`` of shape (1, D, N)
    target : ndarray of shape (B, D), finite, one query column per task

    Returns
    -------
    J : float
    dW, dV : ndarray of shape (D, D)
    """
    Z = as_float("Z", Z, ndim_min=2)
    if Z.ndim < 3:
        raise ValueError(f"Z has shape {Z.shape}, expected a batch of shape (B, D, N); for one task pass Z[None] "
                         "and target[None]")
    Z = check_tokens(Z, Z.shape[-1] - 1)
    target = as_float("target", target)
    if target.shape != Z.shape[:-1]:
        raise ValueError(f"target has shape {target.shape}, expected {Z.shape[:-1]} (one query column per task of Z)")
    W, V = check_weights(W, V, Z.shape[-2])
    return _one_step_loss(W, V, Z, target)


class Progress:
    """Prints ``iteration, loss, iterations/s`` at most every ``every`` seconds (and at the last one), unless ``quiet``.

    ``total`` iterations in all; ``label`` names the run in the printed line.
    """

    def __init__(self, total: int, label: str, quiet: bool = False, every: float = 2.0):
        check_positive("total", total, integer=True, allow_zero=True)
        check_positive("every", every, allow_zero=True)
        self.total, self.label, self.quiet, self.every = total, str(label), check_flag("quiet", quiet), every
        self.start = self.last = time.perf_counter()

    def __call__(self, step: int, loss: float) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < self.every and step + 1 < self.total):
            return
        self.last = now
        rate = (step + 1) / max(now - self.start, 1e-9)
        print(f"  [{self.label}] iteration {step + 1:>6}/{self.total}  loss {loss:.3e}  {rate:7.1f} it/s", flush=True)


def init_weights(rng: np.random.Generator, d: int, init: str = "zeros", init_scale: float = 0.1):
    """Starting ``W, V`` of shape (2d, 2d): ``"zeros"``, or ``"random"`` with i.i.d. N(0, init_scale^2) entries.

    Parameters
    ----------
    rng : np.random.Generator, draws the random start (W first, then V); unused by ``"zeros"``
    d : int >= 1, input dimension
    init : {"zeros", "random"}
    init_scale : float > 0, standard deviation of the random entries (checked for either ``init``)

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    """
    check_generator(rng)
    check_positive("d", d, integer=True)
    check_size("W", (2 * d, 2 * d))
    _check_choice("init", init, ("zeros", "random"))
    check_positive("init_scale", init_scale)
    return _init_weights(rng, d, init, init_scale)


def _init_weights(rng, d: int, init: str, init_scale: float):
    """Kernel of :func:`init_weights` on checked arguments."""
    if init == "zeros":
        return np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    return init_scale * rng.standard_normal((2 * d, 2 * d)), init_scale * rng.standard_normal((2 * d, 2 * d))


def train_one_step_layer(rng: np.random.Generator, *, n: int, d: int, eta: float, iterations: int | None = None,
                         batch: int | None = None, lr: float | None = None, optimizer: str = "adam",
                         init: str = "zeros",
                         sigma0: float | None = None, params: str = "full", init_scale: float = 0.1,
                         momentum: float = 0.0, schedule: str = "cosine",
                         quiet: bool = False, activation: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    r"""Train one attention layer to perform one NGD step (chapter 06, paper Figs. 3-4).

    Every iteration draws ``batch`` fresh tasks and :math:`w_0 \sim N(0, \sigma_0^2 I_d)` from ``rng``
    (no fixed pool), computes :func:`one_step_loss` and its hand-written gradient, and applies
    the hand-written optimizer. The fixed point is :math:`(W^*, V^*)` = :func:`ngdformer.ngd_weights` ``(d, eta)``.
    The defaults are the recipe chapter 06 uses (Adam, lr 0.02 decayed to nearly 0 on a cosine,
    batch 32, 500 iterations, :math:`\sigma_0 = 1/\sqrt d`), which brings the layer to the
    construction at the paper's sizes; chapter 06 shows what :math:`\sigma_0 = 1` does and
    invites trying a constant learning rate.

    Parameters
    ----------
    rng : np.random.Generator, the only source of randomness (tasks, w0, random init)
    n, d : int >= 1, context size and input dimension
    eta : float > 0, the NGD step the layer is taught
    iterations : int, 0 <= iterations <= ``MAX_DEPTH`` (10**6), or None, optimizer steps (None: 500 for the
        softmax layer; an elementwise ``activation`` has its own defaults, see
        :func:`ngdformer.elementwise.train_elementwise_layer`)
    batch : int >= 1 or None, tasks per iteration (None: 32)
    lr : float > 0 or None, learning rate (None: 0.02 for the softmax layer)
    optimizer : ``"adam"`` (default) or ``"sgd"`` (with ``momentum``)
    momentum : float in [0, 1), SGD momentum (ignored by Adam, but checked)
    init : ``"zeros"`` or ``"random"`` (entries N(0, init_scale^2) in all eight blocks)
    init_scale : float > 0, standard deviation of a random start
    sigma0 : float >= 0 or None, scale of the starting iterate (None: :math:`1/\sqrt d`, so
        :math:`\|w_0\| \approx 1` whatever d is)
    params : ``"full"`` trains the whole (2d, 2d) ``W`` and ``V``; ``"blocks"`` trains only
        :math:`(W_{12}, V_{11}, V_{21})` (the others stay at their initial values, zero or random)
    schedule : ``"cosine"`` (default; :func:`ngdformer.optim.cosine_lr`: iteration t = 0, ..., T - 1
        uses ``cosine_lr(lr, t, T)`` = :math:`\mathrm{lr}\,(1 + \cos(\pi t / T))/2`, from ``lr`` at the
        first iteration down to about :math:`\mathrm{lr}\,\pi^2 / (4T^2)` at the last) or ``"constant"``.
        With the cosine decay the loss curve flattens at the end partly because the learning rate
        nearly reaches 0.
    quiet : bool, silence the progress line (printed at most every ~2 s)
    activation : None (default: the softmax layer on one-step NGD targets) or the name of an
        elementwise attention (chapter 10), trained on one-step GD targets of the matching loss
        by :func:`ngdformer.elementwise.train_elementwise_layer` with the same arguments

    Returns
    -------
    W, V : ndarray of shape (2d, 2d), after the last step
    history : dict of ndarrays of shape (iterations,): ``loss`` (batch loss of iteration t, before its
        update), and after update t: ``c1``, ``c2`` (see :func:`block_scales`), ``dist`` (relative distance to
        :math:`(W^*, V^*)`, :func:`distance_to_construction`), ``dist_excited`` (the same restricted to
        the three excited blocks); plus ``seconds`` (float, wall time).

    Examples
    --------
    With the defaults (500 iterations) the layer lands on the construction:

    >>> W, V, history = train_one_step_layer(np.random.default_rng(0), n=10, d=2, eta=0.5, quiet=True)
    >>> bool(history["dist"][-1] < 1e-4)
    True
    >>> np.round(W, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    array([[ 0.,  0., -1.,  0.],
           [ 0.,  0.,  0., -1.],
           [ 0.,  0.,  0.,  0.],
           [ 0.,  0.,  0.,  0.]])
    """
    if activation is not None:  # an elementwise layer on one-step GD targets (chapter 10)
        from .elementwise import train_elementwise_layer

        return train_elementwise_layer(rng, n=n, d=d, eta=eta, activation=activation, iterations=iterations,
                                       batch=batch, lr=lr, optimizer=optimizer, init=init, sigma0=sigma0,
                                       params=params, init_scale=init_scale, momentum=momentum,
                                       schedule=schedule, quiet=quiet)
    iterations = 500 if iterations is None else iterations  # the recipe of chapter 06
    batch = 32 if batch is None else batch
    lr = 2e-2 if lr is None else lr
    sigma0, opt = _check_one_step_training(rng, n, d, eta, iterations, batch, lr, optimizer, init, sigma0, params,
                                           init_scale, momentum, schedule, quiet)
    W, V = _init_weights(rng, d, init, init_scale)
    Ws, Vs = ngd_weights(d, eta)
    frozen = (W.copy(), V.copy())  # blocks mode: the five unexcited blocks keep these values
    theta = _to_blocks(W, V) if params == "blocks" else (W, V)
    state = opt.init(theta)
    hist = {key: np.zeros(iterations) for key in ("loss", "c1", "c2", "dist", "dist_excited")}
    progress = Progress(iterations, "one-step layer", quiet)
    start = time.perf_counter()
    for t in range(iterations):
        Z, target = _one_step_batch(rng, batch, n, d, eta, sigma0)
        J, dW, dV = _one_step_loss(W, V, Z, target)
        grads = _to_blocks(dW, dV) if params == "blocks" else (dW, dV)
        lr_t = _cosine_lr(lr, t, iterations) if schedule == "cosine" else lr
        theta, state = opt.update(theta, grads, state, lr=lr_t)
        W, V = _assemble(theta, frozen, d) if params == "blocks" else theta
        hist["loss"][t] = J
        hist["c1"][t], hist["c2"][t] = _block_scales(W, V)
        hist["dist"][t] = _rel((W, V), (Ws, Vs))
        hist["dist_excited"][t] = _rel(_to_blocks(W, V), _to_blocks(Ws, Vs))
        progress(t, J)
    hist["seconds"] = time.perf_counter() - start
    return W, V, hist


def _check_one_step_training(rng, n, d, eta, iterations, batch, lr, optimizer, init, sigma0, params, init_scale,
                             momentum, schedule, quiet):
    """Validate every argument of :func:`train_one_step_layer` at once; return sigma0 and the optimizer."""
    _check_batch(rng, batch, n, d)
    check_positive("eta", eta)
    check_positive("iterations", iterations, integer=True, allow_zero=True, maximum=MAX_DEPTH)
    sigma0 = 1.0 / np.sqrt(d) if sigma0 is None else check_positive("sigma0", sigma0, allow_zero=True)
    _check_choice("params", params, ("full", "blocks"))
    _check_choice("schedule", schedule, ("cosine", "constant"))
    _check_choice("init", init, ("zeros", "random"))
    check_positive("init_scale", init_scale)
    _check_fraction("momentum", momentum)  # checked for Adam too, which ignores it
    check_flag("quiet", quiet)
    _check_choice("optimizer", optimizer, ("adam", "sgd"))
    hyper = {"lr": lr} if optimizer == "adam" else {"lr": lr, "momentum": momentum}
    return sigma0, _kernel_optimizer(optimizer, **hyper)


def _assemble(blocks, frozen, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the trained blocks into copies of the frozen full matrices."""
    W, V = frozen[0].copy(), frozen[1].copy()
    W[:d, d:], V[:d, :d], V[d:, :d] = blocks
    return W, V


def _rel(a, b) -> float:
    """Relative Frobenius distance of two tuples of arrays."""
    num = sum(np.sum((x - y) ** 2) for x, y in zip(a, b))
    return float(np.sqrt(num / sum(np.sum(y ** 2) for y in b)))
