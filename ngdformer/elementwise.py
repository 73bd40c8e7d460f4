r"""Elementwise attention by hand: the softmax replaced by a function of each score (chapter 10).

Tokens are columns, as in :mod:`ngdformer.attention`: ``Z`` has shape (..., D, N), keys and
values are the first ``n_context`` columns :math:`K = Z_{:, :n}`, every column is a query, and

.. math:: f(Z) = Z + V K\,\varphi(K^\top W Z),

with :math:`\varphi` applied to each score on its own: nothing normalises over the keys.
The activations are

.. math:: \text{linear: } 1 + s, \qquad \text{relu: } \max(0, 1 + s), \qquad
          \text{sigmoid: } \sigma(s), \qquad \text{exp: } e^s .

With the softmax construction's score matrix and a value matrix carrying the :math:`1/n`,
:math:`(W^*, V^*/n)` = :func:`gd_weights` ``(d, eta, n)``, the query's scores are
:math:`-m_i(w)` and its bottom half becomes

.. math:: w + \frac{\eta}{n}\sum_i \varphi(-m_i)\, y_i x_i = w - \eta \nabla \mathcal L(w),
          \qquad \mathcal L(w) = \frac1n \sum_i \ell(m_i),\ \ \ell'(m) = -\varphi(-m):

one GD step on the squared loss, the squared hinge, the logistic loss or the exponential
loss (:data:`ACTIVATION_LOSS`). :func:`elementwise_attention_forward` and
:func:`elementwise_attention_backward` are the textbook layer (each line one named
intermediate, the backward the same lines upside down), :func:`elementwise_attention_naive`
the per-token reference; the query-column kernels below them serve the looped evaluation
and the training, and the tests compare all of them.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from .checks import (InputTypeError, as_float, check_cache_gradient, check_depth, check_layer, check_positive,
                     check_size, check_tokens, check_weights)
from .construction import context_is_inert, ngd_weights
from .losses import _GRAD_KERNELS
from .optim import cosine_lr, make_optimizer
from .tasks import _embed, sample_tasks
from .training import Progress, _assemble, _block_scales, _to_blocks, init_weights

#: The activations :math:`\varphi`, in the order the course shows them.
ACTIVATIONS = ("linear", "relu", "sigmoid", "exp")

#: The loss of ``ngdformer.LOSSES`` on which each activation's constructed layer takes one GD step:
#: :math:`\ell'(m) = -\varphi(-m)`.
ACTIVATION_LOSS = {"linear": "squared", "relu": "squared_hinge", "sigmoid": "logistic", "exp": "exp"}


def _check_activation(activation) -> str:
    if not isinstance(activation, str):
        raise InputTypeError(f"activation must be a string, one of {list(ACTIVATIONS)}, got {activation!r}")
    if activation not in ACTIVATION_LOSS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    return activation


def _check_elementwise(Z, W, V, n_context: int, activation):
    """Validate the inputs of one elementwise layer; return ``Z, W, V`` as float arrays."""
    _check_activation(activation)
    return check_layer(Z, W, V, n_context)


def phi(s, activation: str) -> np.ndarray:
    r"""The activation :math:`\varphi(s)`, entry by entry (chapter 10).

    .. math:: \text{linear: } 1 + s, \quad \text{relu: } \max(0, 1 + s), \quad
              \text{sigmoid: } \sigma(s), \quad \text{exp: } e^s

    The sigmoid keeps full relative accuracy in both tails (:math:`\sigma(-40) \approx 4 \cdot 10^{-18}`,
    not 0). The exponential is ``inf`` where :math:`e^s` exceeds the dtype's range (s above about
    709 in float64), with NumPy's overflow warning: an exp layer then returns inf or NaN.

    Parameters
    ----------
    s : ndarray of any shape, the scores.
    activation : {"linear", "relu", "sigmoid", "exp"}

    Returns
    -------
    a : ndarray, the shape of ``s``.
    """
    if activation == "linear":
        return 1.0 + s
    if activation == "relu":
        return np.maximum(1.0 + s, 0.0)
    if activation == "sigmoid":
        e = np.exp(-np.abs(s))  # in (0, 1]: never overflows
        return np.where(s >= 0, 1.0, e) / (1.0 + e)  # 1 / (1 + e^{-s}) or e^s / (1 + e^s)
    if activation == "exp":
        return np.exp(s)
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")


def phi_prime(s, activation: str) -> np.ndarray:
    r"""The derivative :math:`\varphi'(s)`, entry by entry (chapter 10).

    .. math:: \text{linear: } 1, \quad \text{relu: } [s > -1], \quad
              \text{sigmoid: } \sigma(s)\,\sigma(-s), \quad \text{exp: } e^s

    At the ReLU's kink :math:`s = -1` it returns 0 (a subgradient).

    Parameters
    ----------
    s : ndarray of any shape, the scores.
    activation : {"linear", "relu", "sigmoid", "exp"}

    Returns
    -------
    da_ds : ndarray, the shape of ``s``.
    """
    if activation == "linear":
        return np.ones_like(s)
    if activation == "relu":
        return (s > -1.0).astype(np.result_type(s, np.float32))
    if activation == "sigmoid":
        e = np.exp(-np.abs(s))
        return e / ((1.0 + e) * (1.0 + e))  # sigma(s) sigma(-s), accurate in both tails
    if activation == "exp":
        return np.exp(s)
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")


class ElementwiseCache(NamedTuple):
    """What :func:`elementwise_attention_backward` needs from the forward pass."""

    Z: np.ndarray  #: (..., D, N) input tokens
    W: np.ndarray  #: (D, D) score weights
    V: np.ndarray  #: (D, D) value weights
    n_keys: int  #: keys and values are ``Z[..., :n_keys]``
    activation: str  #: the name of phi, one of ACTIVATIONS
    T: np.ndarray  #: (..., D, N) W applied to the queries
    S: np.ndarray  #: (..., n_keys, N) scores
    A: np.ndarray  #: (..., n_keys, N) attention weights phi(S), not normalised
    U: np.ndarray  #: (..., D, N) attended values K A


def elementwise_attention_forward(Z, W, V, n_context: int, activation: str) -> tuple:
    r"""One elementwise attention layer with a residual connection (chapter 10).

    .. math::
        T = W Z,\quad S = K^\top T,\quad A = \varphi(S),\quad
        U = K A,\quad \mathrm{out} = Z + V U

    Parameters
    ----------
    Z : ndarray of shape (..., D, N), tokens as columns; leading dimensions are batch.
    W, V : ndarray of shape (D, D)
    n_context : int, 1 <= n_context <= N - 1; keys and values are ``Z[..., :n_context]``
    activation : {"linear", "relu", "sigmoid", "exp"}, the function :math:`\varphi`
        (:func:`phi`), applied to every score on its own

    Returns
    -------
    out : ndarray of shape (..., D, N)
    cache : ElementwiseCache

    Examples
    --------
    The constructed layer moves the query's bottom half by one GD step:

    >>> from ngdformer import embed, read_weights
    >>> X, y = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, -1.0])
    >>> W, V = gd_weights(2, 0.5, 2)
    >>> out, _ = elementwise_attention_forward(embed(X, y), W, V, 2, "linear")
    >>> read_weights(out)  # w0 = 0: phi(0) = 1, w1 = 0.5 * (x1 - x2) / 2
    array([ 0.25, -0.5 ])
    """
    Z, W, V = _check_elementwise(Z, W, V, n_context, activation)
    K = Z[..., :n_context]  # (..., D, n) keys, also the values
    T = W @ Z  # (..., D, N) every column is a query
    S = np.swapaxes(K, -1, -2) @ T  # (..., n, N) scores
    A = phi(S, activation)  # each score on its own: no sum over the keys
    U = K @ A  # (..., D, N) attended values
    out = Z + V @ U  # residual
    return out, ElementwiseCache(Z, W, V, n_context, activation, T, S, A, U)


def elementwise_attention_backward(dout, cache: ElementwiseCache) -> tuple:
    r"""Backward pass of :func:`elementwise_attention_forward`: its lines in reverse.

    .. math::
        dV = \textstyle\sum dout\, U^\top,\ dU = V^\top dout,\ dA = K^\top dU,\
        dS = \varphi'(S) \odot dA,\ dT = K dS,\ dW = \textstyle\sum dT Z^\top,

        dZ = dout + W^\top dT + [dU A^\top + T dS^\top,\ 0]

    with sums over the batch (chapter 10). Where the softmax's backward subtracts
    :math:`\langle A, dA\rangle` (its weights sum to 1), this one only multiplies by
    :math:`\varphi'` (:func:`phi_prime`).

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient of a scalar with respect to ``out``.
    cache : ElementwiseCache from :func:`elementwise_attention_forward`.

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    dW, dV : ndarray of shape (D, D), summed over the batch.
    """
    dout = check_cache_gradient(dout, cache.Z)
    Z, W, V, n_keys, activation, T, S, A, U = cache
    D, K = Z.shape[-2], Z[..., :n_keys]
    dV = np.sum((dout @ np.swapaxes(U, -1, -2)).reshape(-1, D, D), axis=0)  # V U
    dU = V.T @ dout  # (..., D, N)
    dA = np.swapaxes(K, -1, -2) @ dU  # U = K A
    dS = phi_prime(S, activation) * dA  # A = phi(S), entry by entry
    dT = K @ dS  # S = K^T T
    dW = np.sum((dT @ np.swapaxes(Z, -1, -2)).reshape(-1, D, D), axis=0)  # T = W Z
    dZ = dout + W.T @ dT  # residual path, and every column as a query
    dK = dU @ np.swapaxes(A, -1, -2) + T @ np.swapaxes(dS, -1, -2)  # values, keys
    dZ[..., :n_keys] += dK
    return dZ, dW, dV


def elementwise_attention_naive(Z, W, V, n_context: int, activation: str) -> np.ndarray:
    """Per-token reference for :func:`elementwise_attention_forward`: loops over tasks, queries and keys.

    Obviously right and slow; it computes :math:`\\varphi` with scalar formulas of its own.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    W, V : ndarray of shape (D, D)
    n_context : int; activation : str, as in :func:`elementwise_attention_forward`.

    Returns
    -------
    out : ndarray of shape (..., D, N), the dtype of :func:`elementwise_attention_forward`'s output
        (float32 only when ``Z``, ``W`` and ``V`` all are); an empty batch gives an empty result.
    """
    Z, W, V = _check_elementwise(Z, W, V, n_context, activation)
    D, N = Z.shape[-2:]
    out = Z.copy()  # (..., D, N), already in the dtype NumPy's promotion gives Z, W and V
    for z, o in zip(Z.reshape(-1, D, N), out.reshape(-1, D, N)):  # one task at a time; none for an empty batch
        for j in range(N):
            q = z[:, j]
            update = np.zeros(D, dtype=z.dtype)
            for i in range(n_context):
                update += _scalar_phi(float(z[:, i] @ W @ q), activation) * z[:, i]
            o[:, j] = q + V @ update
    return out


def _scalar_phi(s: float, activation: str) -> float:
    """:func:`phi` of one score, written with the ``math`` module's scalar formulas."""
    if activation == "linear":
        return 1.0 + s
    if activation == "relu":
        return max(0.0, 1.0 + s)
    if activation == "sigmoid":
        return 1.0 / (1.0 + math.exp(-s)) if s >= 0 else math.exp(s) / (1.0 + math.exp(s))
    return math.exp(s) if s < 709.0 else math.inf


def gd_weights(d: int, eta: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Weights of the elementwise layer that takes one GD step of size ``eta`` on ``n`` examples (chapter 10).

    .. math:: W^* = \begin{bmatrix}0 & -I_d\\ 0 & 0\end{bmatrix},\qquad
              \frac{V^*}{n} = \begin{bmatrix}0 & 0\\ \frac{\eta}{n} I_d & 0\end{bmatrix}

    The softmax construction :func:`ngdformer.ngd_weights` with the value matrix divided by
    ``n``: an elementwise layer does not average over the keys, so the :math:`1/n` of the mean
    loss lives in :math:`V`. On a context of :math:`n' \neq n` examples the same layer takes a
    GD step of size :math:`\eta\, n'/n`.

    Parameters
    ----------
    d : int >= 1, input dimension (the tokens have D = 2d rows)
    eta : float > 0, the GD step size
    n : int >= 1, the context size the step is averaged over

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    """
    check_positive("n", n, integer=True)
    W, V = ngd_weights(d, eta)
    return W, V / n


# --- the query column: looped evaluation and training (checked input only below this line) ------------


def _query_kernel(K, q, W, V, activation: str):
    r"""One layer on the query columns only: ``q`` (B, D), keys ``K`` (B, D, n) -> the new ``q`` and intermediates.

    .. math:: T = W q,\quad S = K^\top T,\quad A = \varphi(S),\quad U = K A,\quad q + V U
    """
    T = q @ W.T  # (B, D)
    S = (T[:, None, :] @ K)[:, 0, :]  # (B, n) scores
    A = phi(S, activation)  # (B, n)
    U = (K @ A[:, :, None])[:, :, 0]  # (B, D)
    return q + U @ V.T, (T, S, A, U)


def elementwise_trajectory(Z, W, V, n_context: int, depth: int, activation: str) -> np.ndarray:
    r"""The iterate read out of the query column after every application: :math:`w_0, w_1, \dots, w_L` (chapter 10).

    With :func:`gd_weights` ``(d, eta, n)`` on contexts of ``n`` examples this is GD on the
    loss :data:`ACTIVATION_LOSS` ``[activation]`` with step ``eta``, step by step. When
    :func:`ngdformer.context_is_inert` ``(W, V)`` only the query column is updated (exact
    there, O(B n D) per application); otherwise the full layer runs. A loop that diverges (a
    step size above the stability limit, chapter 10) returns ``inf`` or NaN from the
    application where the numbers leave the float range on, without a warning.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N), e.g. :func:`ngdformer.embed` ``(X, y, w0)``
    W, V : ndarray of shape (D, D)
    n_context : int, keys and values are ``Z[..., :n_context]``
    depth : int >= 0, number of applications L
    activation : {"linear", "relu", "sigmoid", "exp"}

    Returns
    -------
    w : ndarray of shape (depth + 1, ..., d); ``w[t]`` is :func:`ngdformer.read_weights` after t applications.
        ``w[0]`` is finite; an entry that has left the float range (a diverging loop) stays inf or NaN.
    """
    check_depth(depth)
    Z, W, V = _check_elementwise(Z, W, V, n_context, activation)
    D, N = Z.shape[-2:]
    d = D // 2
    out = np.empty(check_size("the trajectory", (depth + 1,) + Z.shape[:-1]), dtype=Z.dtype)  # (depth + 1, ..., D)
    out[0] = Z[..., -1]
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging loop runs on to inf / NaN, silently
        if context_is_inert(W, V):
            _query_loop(Z.reshape(-1, D, N)[:, :, :n_context], W, V, activation, out.reshape(depth + 1, -1, D))
        else:
            for t in range(depth):
                Z = _full_layer(Z, W, V, n_context, activation)
                out[t + 1] = Z[..., -1]
    return out[..., d:]


def _query_loop(K, W, V, activation: str, out) -> None:
    """Fill ``out[1:]`` (depth, B, D) with the query after each application, from ``out[0]``; keys ``K`` (B, D, n).

    Reads only the rows of ``K`` that meet a non-zero row of ``W`` and writes only through the
    non-zero columns of ``V`` (the top halves, for the construction): the same numbers as
    :func:`_query_kernel`, at half the cost.
    """
    rows, cols = _support(W, axis=1), _support(V, axis=0)
    W_rows, V_cols = W[rows], V[:, cols]  # (|rows|, D), (D, |cols|)
    K_rows, K_cols = K[:, rows], K[:, cols]  # (B, |rows|, n), (B, |cols|, n)
    for t in range(out.shape[0] - 1):
        q = out[t]  # (B, D)
        S = ((q @ W_rows.T)[:, None, :] @ K_rows)[:, 0, :]  # (B, n) scores
        U_cols = (K_cols @ phi(S, activation)[:, :, None])[:, :, 0]  # (B, |cols|) the rows of K A that V reads
        out[t + 1] = q + U_cols @ V_cols.T


def _support(M, axis: int) -> slice:
    """Smallest range of rows (``axis=1``) or columns (``axis=0``) of ``M`` holding all its non-zero entries."""
    nonzero = np.flatnonzero(np.any(M != 0, axis=axis))
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else slice(0, 0)


def _full_layer(Z, W, V, n_keys: int, activation: str) -> np.ndarray:
    """The forward of :func:`elementwise_attention_forward` on checked input, without a cache."""
    K = Z[..., :n_keys]
    return Z + V @ (K @ phi(np.swapaxes(K, -1, -2) @ (W @ Z), activation))


def elementwise_batch(rng: np.random.Generator, batch: int, n: int, d: int, eta: float, activation: str,
                      sigma0: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw a training batch: tokens :math:`Z_0` and the targets :math:`[0;\ w_0 - \eta\nabla\mathcal L(w_0)]`.

    The loss is :data:`ACTIVATION_LOSS` ``[activation]``; tasks from :func:`ngdformer.sample_tasks`,
    then :math:`w_0 \sim N(0, \sigma_0^2 I_d)`, drawn in the order of
    :func:`ngdformer.training.one_step_batch`.

    Parameters
    ----------
    rng : np.random.Generator
    batch, n, d : int, tasks B, context size and input dimension
    eta : float > 0, the GD step of the targets
    activation : {"linear", "relu", "sigmoid", "exp"}
    sigma0 : float >= 0, scale of the starting iterate

    Returns
    -------
    Z : ndarray of shape (B, 2d, n + 1)
    target : ndarray of shape (B, 2d)
    """
    grad = _GRAD_KERNELS[ACTIVATION_LOSS[_check_activation(activation)]]
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = sigma0 * rng.standard_normal((batch, d))
    target = np.zeros((batch, 2 * d))
    with np.errstate(over="ignore", invalid="ignore"):  # exp targets can overflow for a large sigma0
        target[:, d:] = w0 - eta * grad(w0, X, y)
    return _embed(w0, X, y), target


def elementwise_one_step_loss(W, V, Z, target, activation: str) -> tuple[float, np.ndarray, np.ndarray]:
    r"""One-step supervision loss of an elementwise layer and its gradients (chapter 10).

    .. math:: J = \frac1B \sum_b \tfrac12\|o_b - t_b\|^2,\qquad o = f(Z)_{:, N}

    Only the query column is computed (the loss reads nothing else); the gradient is the
    backward of :func:`elementwise_attention_forward` restricted to that column.

    Parameters
    ----------
    W, V : ndarray of shape (D, D)
    Z : ndarray of shape (..., D, N), context in the first N - 1 columns; the mean is over all
        leading dimensions
    target : ndarray of shape (..., D)
    activation : {"linear", "relu", "sigmoid", "exp"}

    Returns
    -------
    J : float
    dW, dV : ndarray of shape (D, D)
    """
    _check_activation(activation)
    Z = as_float("Z", Z, ndim_min=2)
    Z = check_tokens(Z, Z.shape[-1] - 1)
    target = as_float("target", target)
    if target.shape != Z.shape[:-1]:
        raise ValueError(f"target has shape {target.shape}, expected {Z.shape[:-1]} (one query column per task of Z)")
    W, V = check_weights(W, V, Z.shape[-2])
    D, N = Z.shape[-2:]
    return _one_step_loss(W, V, Z.reshape(-1, D, N), target.reshape(-1, D), activation)


def _one_step_loss(W, V, Z, target, activation: str):
    """Kernel of :func:`elementwise_one_step_loss` on checked input: Z (B, D, N), target (B, D)."""
    B = Z.shape[0]
    K, q = Z[:, :, :-1], Z[:, :, -1]  # (B, D, n), (B, D)
    o, (T, S, A, U) = _query_kernel(K, q, W, V, activation)
    r = o - target  # (B, D) residual of the query column
    g = r / B  # dJ/do
    dV = g.T @ U  # o = q + V U, summed over the batch
    dU = g @ V  # (B, D)
    dA = (dU[:, None, :] @ K)[:, 0, :]  # (B, n)
    dS = phi_prime(S, activation) * dA
    dT = (K @ dS[:, :, None])[:, :, 0]  # (B, D)
    dW = dT.T @ q  # T = W q
    return 0.5 * float(np.sum(r * r)) / B, dW, dV


#: Per-activation defaults of :func:`train_elementwise_layer` (any argument left as None).
TRAINING_DEFAULTS = {"iterations": 1000, "batch": 32, "lr": 0.03}


def train_elementwise_layer(rng: np.random.Generator, *, n: int, d: int, eta: float, activation: str,
                            iterations: int | None = None, batch: int | None = None, lr: float | None = None,
                            optimizer: str = "adam", init: str = "zeros", sigma0: float | None = None,
                            params: str = "full", init_scale: float = 0.1, momentum: float = 0.0,
                            schedule: str = "cosine", quiet: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    r"""Train one elementwise attention layer on one-step GD targets (chapter 10).

    Every iteration draws ``batch`` fresh tasks and :math:`w_0 \sim N(0, \sigma_0^2 I_d)`
    (:func:`elementwise_batch`), computes :func:`elementwise_one_step_loss` and its hand-written
    gradient, and applies the hand-written optimizer, as :func:`ngdformer.train_one_step_layer`
    does for the softmax layer. The fixed point is :func:`gd_weights` ``(d, eta, n)``. The
    optimizer works on :math:`(W, nV)`: the construction's :math:`V^*/n` has entries
    :math:`\eta/n`, and Adam moves every entry by about ``lr`` per step whatever its scale. The
    defaults (1000 iterations of Adam on 32 fresh tasks, ``lr`` 0.03 decayed to nearly 0 on a cosine,
    :math:`\sigma_0 = 1/\sqrt d`, zero start) recover the construction to about :math:`10^{-13}`
    for the linear, ReLU and sigmoid layers at n = 20, d = 5, eta = 0.5 (chapter 10); the
    exponential layer needs a smaller :math:`\sigma_0` (chapter 10 explains why).
    :func:`ngdformer.train_one_step_layer` ``(..., activation=...)`` calls this function.

    Parameters
    ----------
    rng : np.random.Generator, the only source of randomness (tasks, w0, random init)
    n, d : int, context size and input dimension
    eta : float > 0, the GD step the layer is taught
    activation : {"linear", "relu", "sigmoid", "exp"}
    iterations : int >= 0 or None, optimizer steps (None: 1000)
    batch : int or None, tasks per iteration (None: 32)
    lr : float or None, learning rate (None: 0.03)
    optimizer : ``"adam"`` (default) or ``"sgd"`` (with ``momentum``)
    init : ``"zeros"`` or ``"random"`` (entries N(0, init_scale^2) in all eight blocks)
    sigma0 : float >= 0 or None, scale of the starting iterate (None: :math:`1/\sqrt d`)
    params : ``"full"`` (the whole W and V) or ``"blocks"`` (only :math:`W_{12}, V_{11}, V_{21}`)
    init_scale : float > 0, standard deviation of a random start
    momentum : float in [0, 1), SGD momentum (ignored by Adam)
    schedule : ``"cosine"`` (default, :func:`ngdformer.optim.cosine_lr`: lr decayed to nearly 0 by the
        last iteration) or ``"constant"``
    quiet : bool, silence the progress line

    Returns
    -------
    W, V : ndarray of shape (2d, 2d), after the last step
    history : dict of ndarrays of shape (iterations,): ``loss`` (batch loss before update t), and after
        update t: ``c1``, ``c2`` (:func:`ngdformer.block_scales`; :math:`c_2 = \eta/n` at the construction),
        ``dist`` (relative distance to :func:`gd_weights` ``(d, eta, n)``), ``dist_excited`` (the same in the
        blocks :math:`W_{12}, V_{11}, V_{21}`); plus ``seconds`` (float, wall time).
    """
    _check_activation(activation)
    iterations = TRAINING_DEFAULTS["iterations"] if iterations is None else iterations
    batch = TRAINING_DEFAULTS["batch"] if batch is None else batch
    lr = TRAINING_DEFAULTS["lr"] if lr is None else lr
    for name, value in (("n", n), ("d", d), ("batch", batch)):
        check_positive(name, value, integer=True)
    check_positive("iterations", iterations, integer=True, allow_zero=True, maximum=10**6)
    check_positive("eta", eta)
    check_positive("lr", lr)
    sigma0 = 1.0 / np.sqrt(d) if sigma0 is None else check_positive("sigma0", sigma0, allow_zero=True)
    if params not in ("full", "blocks"):
        raise ValueError(f"params must be 'full' or 'blocks', got {params!r}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    hyper = {"lr": lr} if optimizer == "adam" else {"lr": lr, "momentum": momentum}
    opt = make_optimizer(optimizer, **hyper)
    W, V = init_weights(rng, d, init, init_scale)
    Ws, Vs = gd_weights(d, eta, n)
    ref2 = float(np.sum(Ws ** 2) + np.sum(Vs ** 2))  # the construction lives in the excited blocks only
    frozen = (W.copy(), V.copy())
    theta = _scaled(_to_blocks(W, V) if params == "blocks" else (W, V), n)
    state = opt.init(theta)
    hist = {key: np.zeros(iterations) for key in ("loss", "c1", "c2", "dist", "dist_excited")}
    progress = Progress(iterations, f"{activation} layer", quiet)
    start = time.perf_counter()
    for t in range(iterations):
        Z, target = elementwise_batch(rng, batch, n, d, eta, activation, sigma0)
        with np.errstate(over="ignore", invalid="ignore"):  # an exp layer can overflow; the history shows it
            J, dW, dV = _one_step_loss(W, V, Z, target, activation)
        if not (np.isfinite(J) and np.all(np.isfinite(dW)) and np.all(np.isfinite(dV))):
            for key in hist:  # the run has left the float range: the rest of the history is NaN
                hist[key][t:] = np.nan
            break
        grads = _scaled(_to_blocks(dW, dV) if params == "blocks" else (dW, dV), 1.0 / n)
        lr_t = cosine_lr(lr, t, iterations) if schedule == "cosine" else lr
        theta, state = opt.update(theta, grads, state, lr=lr_t)
        W, V = _assemble(_scaled(theta, 1.0 / n), frozen, d) if params == "blocks" else _scaled(theta, 1.0 / n)
        hist["loss"][t] = J
        hist["c1"][t], hist["c2"][t] = _block_scales(W, V)
        dW2, dV2 = np.square(W - Ws), np.square(V - Vs)  # squared errors, entry by entry
        hist["dist"][t] = math.sqrt((dW2.sum() + dV2.sum()) / ref2)
        hist["dist_excited"][t] = math.sqrt((dW2[:d, d:].sum() + dV2[:, :d].sum()) / ref2)
        progress(t, J)
    hist["seconds"] = time.perf_counter() - start
    return W, V, hist


def _scaled(params: tuple, factor: float) -> tuple:
    """The optimizer's view of ``(W, V)`` or ``(W12, V11, V21)``: the value blocks times ``factor``.

    Adam moves every entry by about ``lr`` per iteration, so it trains ``n V`` (target entries
    eta, of the order of W's) rather than V itself (entries eta / n): the same layer, in units
    in which one learning rate suits both matrices. Gradients scale by the inverse factor.
    """
    return (params[0],) + tuple(factor * p for p in params[1:])
