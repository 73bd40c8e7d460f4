r"""Chapter 09's experiments: label noise, a task no linear learner solves, preconditioned NGD, the capstone.

Each function draws from the generator it is given, runs one experiment of chapter 09 and
returns its numbers without printing; the chapter prints them and asserts its claims, and
``tests/test_experiments_ch09.py`` checks the same claims on many seeds.
:func:`preconditioned_batch` and :func:`train_preconditioned` are the answer key of the
chapter's capstone exercise (training one layer on one-step *preconditioned* NGD targets).
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_forward
from ..construction import context_is_inert, looped_forward, ngd_weights
from ..fast import looped_trajectory
from ..gradcheck import rel_error
from ..losses import exp_loss, exp_loss_grad
from ..metrics import accuracy, cosine
from ..optim import cosine_lr, make_optimizer
from ..solvers import max_margin, ngd_step
from ..tasks import embed, read_weights, sample_points, sample_tasks
from ..training import one_step_loss
from ..variants import preconditioned_ngd_step, preconditioned_weights


# ---------------------------------------------------------------------------------------
# Label noise: a context that is not separable
# ---------------------------------------------------------------------------------------

def separable_2d(X, y) -> np.ndarray:
    r"""Whether each 2-D context is strictly separable by a line through the origin.

    The signed points :math:`z_i = y_i x_i` lie in an open half-plane :math:`\{z: \langle u, z\rangle > 0\}`
    exactly when their angles fit in an open arc shorter than :math:`\pi`, i.e. when some gap
    between consecutive angles (around the circle) is longer than :math:`\pi`. This test is
    independent of :func:`ngdformer.max_margin`.

    Parameters
    ----------
    X : ndarray of shape (..., n, 2), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    separable : ndarray of bool, shape (...).
    """
    z = np.asarray(y, dtype=float)[..., None] * np.asarray(X, dtype=float)  # (..., n, 2)
    angles = np.sort(np.arctan2(z[..., 1], z[..., 0]), axis=-1)  # (..., n)
    gaps = np.diff(angles, axis=-1, append=angles[..., :1] + 2 * np.pi)  # (..., n), the last one wraps around
    return gaps.max(axis=-1) > np.pi


def flip_until_not_separable(rng: np.random.Generator, X, y, flip: float) -> np.ndarray:
    r"""Flip each label with probability ``flip``; redraw the flips of any 2-D context that stays separable.

    Parameters
    ----------
    rng : np.random.Generator, draws the flips.
    X : ndarray of shape (B, n, 2), the context inputs (kept: only labels change).
    y : ndarray of shape (B, n), the clean labels.
    flip : float in (0, 1), the probability of each flip.

    Returns
    -------
    y_noisy : ndarray of shape (B, n), labels in {-1, +1}; no context (X[b], y_noisy[b]) is separable
        through the origin (:func:`separable_2d` is False for every b).
    """
    if not 0 < flip < 1:
        raise ValueError(f"flip must be in (0, 1), got {flip!r}")
    y_noisy = np.where(rng.random(y.shape) < flip, -y, y)
    for b in np.flatnonzero(separable_2d(X, y_noisy)):  # rare at flip = 0.25, n = 40
        for _ in range(10_000):
            y_noisy[b] = np.where(rng.random(y.shape[-1]) < flip, -y[b], y[b])
            if not separable_2d(X[b], y_noisy[b]):
                break
        else:
            raise ValueError(f"context {b} stayed separable after 10000 draws of its flips: raise flip or n")
    return y_noisy


def label_noise(rng: np.random.Generator, *, batch: int = 16, n: int = 40, eta: float = 0.25, depth: int = 1000,
                flip: float = 0.25, held: int = 2000) -> dict:
    r"""The constructed layer looped on clean and on label-flipped (not separable) 2-D contexts.

    The same points get clean labels and labels flipped with probability ``flip`` (redrawn
    where a context stays separable, :func:`flip_until_not_separable`). Both are looped
    ``depth`` times from :math:`w_0 = 0` with :math:`(W^*, V^*)`; at the noisy end point
    :math:`\hat w = w_L` the textbook layer is applied once more and compared with
    :func:`ngdformer.ngd_step`, and :math:`\nabla \log \mathcal L(\hat w)` is evaluated.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, the flips and the held-out points.
    batch, n : int, tasks B and context size (d = 2).
    eta : float > 0, the step size of the construction.
    depth : int >= 100, the depth L.
    flip : float in (0, 1), probability of a label flip.
    held : int, held-out points per task (clean labels).

    Returns
    -------
    result : dict with

        - ``refused`` : ndarray of bool (B,), :func:`ngdformer.max_margin` raised ValueError on the noisy context;
        - ``refusal`` : str, the first of those errors' messages;
        - ``separable_noisy`` : ndarray of bool (B,), :func:`separable_2d` of the noisy contexts (all False);
        - ``norms`` : dict ``"clean"``, ``"noisy"`` -> ndarray (L + 1, B), the norms of the iterates;
        - ``w_hat`` : ndarray (B, 2), the noisy iterate at depth L;
        - ``layer_err`` : float, :func:`ngdformer.rel_error` of one more layer at :math:`\hat w` against
          :func:`ngdformer.ngd_step`;
        - ``step`` : ndarray (B, 2), what that layer adds to :math:`\hat w`;
        - ``grad_log`` : ndarray (B, 2), :math:`\nabla\mathcal L(\hat w) / \mathcal L(\hat w)`;
        - ``last_change`` : ndarray (B,), relative change of the noisy norm over the last 100 applications;
        - ``acc_held`` : ndarray (B,), accuracy of :math:`\hat w` on held-out points with clean labels;
        - ``acc_context`` : ndarray (B,), its accuracy on its own noisy context;
        - ``cosine`` : ndarray (B,), the cosine of :math:`\hat w` and :math:`w^*`.
    """
    X, y, w_star = sample_tasks(rng, batch, n, 2)
    y_noisy = flip_until_not_separable(rng, X, y, flip)
    refused, refusal = np.zeros(batch, dtype=bool), ""
    with np.errstate(all="ignore"):  # the solver's iterates overflow on a context it cannot certify
        for b in range(batch):  # the solver names only the first bad task: ask per task
            try:
                max_margin(X[b], y_noisy[b])
            except ValueError as err:
                refused[b], refusal = True, refusal or str(err)
    W, V = ngd_weights(2, eta)
    traj = {name: looped_trajectory(embed(X, labels), W, V, n, depth)  # (L + 1, B, 2), w0 = 0
            for name, labels in (("clean", y), ("noisy", y_noisy))}
    norms = {name: np.linalg.norm(t, axis=-1) for name, t in traj.items()}  # (L + 1, B)
    w_hat = traj["noisy"][-1]
    w_next = read_weights(attention_forward(embed(X, y_noisy, w_hat), W, V, n)[0])  # the textbook layer
    grad_log = exp_loss_grad(w_hat, X, y_noisy) / exp_loss(w_hat, X, y_noisy)[:, None]
    X_new, y_new = sample_points(rng, w_star, held)  # clean labels
    return dict(refused=refused, refusal=refusal, separable_noisy=separable_2d(X, y_noisy), norms=norms, w_hat=w_hat,
                layer_err=rel_error(w_next, ngd_step(w_hat, X, y_noisy, eta)), step=w_next - w_hat,
                grad_log=grad_log,
                last_change=np.abs(norms["noisy"][-1] - norms["noisy"][-101]) / norms["noisy"][-1],
                acc_held=accuracy(w_hat, X_new, y_new), acc_context=accuracy(w_hat, X, y_noisy),
                cosine=cosine(w_hat, w_star))


# ---------------------------------------------------------------------------------------
# XOR: a task no classifier through the origin solves
# ---------------------------------------------------------------------------------------

def xor_labels(X) -> np.ndarray:
    r"""XOR of the signs, :math:`y = \mathrm{sign}(x_1 x_2)`, a tie counting as +1.

    Parameters
    ----------
    X : ndarray of shape (..., 2), points.

    Returns
    -------
    y : ndarray of shape (...), labels in {-1, +1}.
    """
    return np.where(X[..., 0] * X[..., 1] >= 0, 1.0, -1.0)


def xor_lift(X) -> np.ndarray:
    r"""The feature lift :math:`\phi(x) = (x_1, x_2, x_1 x_2)`, in which XOR is linear through the origin.

    Parameters
    ----------
    X : ndarray of shape (..., 2), points (not modified).

    Returns
    -------
    F : ndarray of shape (..., 3), the lifted features.
    """
    return np.concatenate([X, X[..., :1] * X[..., 1:2]], axis=-1)


def xor_tasks(rng: np.random.Generator, *, batch: int = 64, n: int = 40, held: int = 1000, depth: int = 200,
              eta: float = 0.25) -> dict:
    r"""The looped construction on XOR tasks, on the raw 2-D points and on the lifted 3-D features.

    Parameters
    ----------
    rng : np.random.Generator, draws the context and held-out points, :math:`x \sim N(0, I_2)`.
    batch, n : int, tasks B and context size.
    held : int, held-out points per task.
    depth : int >= 1, the depth L.
    eta : float > 0, the step size of the construction.

    Returns
    -------
    result : dict with
        ``acc`` (dict ``"raw"``, ``"lifted"`` -> ndarray of shape (L,): held-out accuracy averaged over
        the B tasks after 1..L applications), ``acc_context_raw`` (ndarray (B,), the raw model's accuracy
        on its own context at depth L), ``w_raw`` (ndarray (B, 2), the raw iterate at depth L),
        ``X``, ``y`` (the contexts, (B, n, 2) and (B, n)), ``X_new``, ``y_new`` (held-out, (B, held, 2), (B, held)).
    """
    X, X_new = rng.standard_normal((batch, n, 2)), rng.standard_normal((batch, held, 2))
    y, y_new = xor_labels(X), xor_labels(X_new)
    acc, w_raw = {}, None
    for name, feats in (("raw", lambda P: P), ("lifted", xor_lift)):
        F, F_new = feats(X), feats(X_new)
        k = F.shape[-1]
        w = looped_trajectory(embed(F, y), *ngd_weights(k, eta), n, depth)[1:]  # (L, B, k), w0 = 0
        positive = y_new > 0  # (B, held)
        acc[name] = np.array([np.count_nonzero(((F_new @ w_t[:, :, None])[..., 0] >= 0) == positive)  # tie: +1
                              for w_t in w]) / (batch * held)  # one depth at a time: (B, held) scores each
        if name == "raw":
            w_raw = w[-1]
    return dict(acc=acc, acc_context_raw=accuracy(w_raw, X, y), w_raw=w_raw, X=X, y=y, X_new=X_new, y_new=y_new)


# ---------------------------------------------------------------------------------------
# Preconditioned NGD: four identities
# ---------------------------------------------------------------------------------------

def random_spd(rng: np.random.Generator, d: int, ridge: float = 0.1) -> np.ndarray:
    r"""A random symmetric positive definite matrix with eigenvalues in [ridge, 1].

    .. math:: P = (1 - \mathrm{ridge})\, \frac{A A^\top}{\lambda_{\max}(A A^\top)} + \mathrm{ridge}\, I,
              \qquad A_{jk} \sim N(0, 1)

    The largest eigenvalue 1 keeps the preconditioned step no longer than the plain one
    (a larger one acts like a larger step size, and round-off grows, chapter 05).

    Parameters
    ----------
    rng : np.random.Generator, draws A.
    d : int, the dimension.
    ridge : float in (0, 1), the smallest eigenvalue.

    Returns
    -------
    P : ndarray of shape (d, d), symmetric positive definite, condition number at most 1 / ridge.
    """
    A = rng.standard_normal((d, d))
    M = A @ A.T
    return (1.0 - ridge) * M / np.linalg.eigvalsh(M)[-1] + ridge * np.eye(d)


def preconditioned_identities(rng: np.random.Generator, *, batch: int = 32, n: int = 20, d: int = 4,
                              eta: float = 0.3, depth: int = 50, eta_loop: float = 0.05) -> dict:
    r"""The preconditioned construction checked four ways, for a random SPD preconditioner P.

    - the layer :func:`ngdformer.preconditioned_weights` against :func:`ngdformer.preconditioned_ngd_step`;
    - that step against plain NGD on whitened data: :math:`P^{1/2}\,\mathrm{NGD}(P^{-1/2} w;\ P^{1/2} x)`;
    - the W-block variant :math:`W_P = [0, -P; 0, 0]` with :math:`V^*`: :math:`P w_{\text{next}}` against the
      preconditioned step from :math:`P w`;
    - ``depth`` applications of the preconditioned layer (step ``eta_loop``) against as many preconditioned steps.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, P (:func:`random_spd`) and :math:`w \sim N(0, I)`.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size of the single-layer checks.
    depth : int, the depth L of the looped check.
    eta_loop : float > 0, the step size of the looped check.

    Returns
    -------
    result : dict with ``err`` (dict ``"layer"``, ``"whitened"``, ``"w_block"``, ``"loop"`` -> float,
        :func:`ngdformer.rel_error` of each identity), ``inert`` (bool, :func:`ngdformer.context_is_inert`
        of the preconditioned layer), ``gap`` (float, :func:`ngdformer.rel_error` of the preconditioned step
        against the plain NGD step), ``P`` (ndarray (d, d)).
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    P = random_spd(rng, d)
    w = rng.standard_normal((batch, d))
    Wp, Vp = preconditioned_weights(d, eta, P)
    step = preconditioned_ngd_step(w, X, y, eta, P)
    layer = read_weights(attention_forward(embed(X, y, w), Wp, Vp, n)[0])
    lam, Q = np.linalg.eigh(P)
    R = Q @ np.diag(np.sqrt(lam)) @ Q.T  # P^{1/2}, symmetric
    u = np.linalg.solve(R, w.T).T  # u = P^{-1/2} w, one row per task
    whitened = ngd_step(u, X @ R, y, eta) @ R  # rows: x^T R = (P^{1/2} x)^T, and back with P^{1/2}
    WP = np.zeros((2 * d, 2 * d))
    WP[:d, d:] = -P
    _, Vstar = ngd_weights(d, eta)
    w_next = read_weights(attention_forward(embed(X, y, w), WP, Vstar, n)[0])
    w_block = preconditioned_ngd_step(w @ P.T, X, y, eta, P)  # the step from v = P w (rows: w P^T)
    Wl, Vl = preconditioned_weights(d, eta_loop, P)
    looped = read_weights(looped_forward(embed(X, y, w), Wl, Vl, n, depth))
    w_ref = w
    for _ in range(depth):
        w_ref = preconditioned_ngd_step(w_ref, X, y, eta_loop, P)
    err = dict(layer=rel_error(layer, step), whitened=rel_error(step, whitened),
               w_block=rel_error(w_next @ P.T, w_block), loop=rel_error(looped, w_ref))
    return dict(err=err, inert=bool(context_is_inert(Wp, Vp)), gap=rel_error(layer, ngd_step(w, X, y, eta)), P=P)


# ---------------------------------------------------------------------------------------
# The capstone's answer key: train one layer on preconditioned one-step targets
# ---------------------------------------------------------------------------------------

def preconditioned_batch(rng: np.random.Generator, batch: int, n: int, d: int, eta: float, P,
                         sigma0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""A training batch: tokens :math:`Z_0` and the query-column targets of one preconditioned NGD step.

    .. math:: \text{target} = [0;\ w_0 + \eta P \textstyle\sum_i p_i(w_0)\, y_i x_i]

    The preconditioned twin of ``ngdformer.training.one_step_batch``: tasks from
    :func:`ngdformer.sample_tasks`, then :math:`w_0 \sim N(0, \sigma_0^2 I_d)` (random, so that the
    scores :math:`-m_i(w_0)` vary and :math:`W_{12}` gets a gradient).

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, then the starting iterates.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size the layer is taught.
    P : ndarray of shape (d, d), the preconditioner.
    sigma0 : float >= 0 or None, scale of :math:`w_0` (None: :math:`1/\sqrt d`, so :math:`\|w_0\| \approx 1`).

    Returns
    -------
    Z : ndarray of shape (B, 2d, n + 1), tokens as columns, :func:`ngdformer.embed` ``(X, y, w0)``.
    target : ndarray of shape (B, 2d), zero top half, :func:`ngdformer.preconditioned_ngd_step` in the bottom half.
    """
    sigma0 = 1.0 / np.sqrt(d) if sigma0 is None else sigma0
    X, y, _ = sample_tasks(rng, batch, n, d)  # X (B, n, d), y (B, n)
    w0 = sigma0 * rng.standard_normal((batch, d))  # (B, d)
    target = np.zeros((batch, 2 * d))
    target[:, d:] = preconditioned_ngd_step(w0, X, y, eta, P)
    return embed(X, y, w0), target


def train_preconditioned(rng: np.random.Generator, P, n: int, d: int, eta: float, iterations: int, *,
                         batch: int = 32, lr: float = 0.05, schedule: str = "cosine",
                         sigma0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Train one attention layer from zero on one-step preconditioned NGD targets (the capstone's answer key).

    Chapter 06's recipe with :func:`preconditioned_batch` for the batches: Adam
    (:func:`ngdformer.make_optimizer`) on :func:`ngdformer.one_step_loss`, the learning rate
    decayed from ``lr`` to 0 on a cosine (``ngdformer.optim.cosine_lr``), a fresh batch every
    iteration, a zero start. Chapter 06's starting learning rate is 0.02; 0.05 gets closer in
    500 iterations at the capstone's sizes. The fixed point is
    :func:`ngdformer.preconditioned_weights` ``(d, eta, P)``.

    Parameters
    ----------
    rng : np.random.Generator, the only source of randomness (the batches).
    P : ndarray of shape (d, d), the preconditioner (not modified).
    n, d : int, context size and input dimension.
    eta : float > 0, the step size the layer is taught.
    iterations : int >= 1, optimizer steps.
    batch : int, tasks per iteration.
    lr : float > 0, the initial learning rate.
    schedule : ``"cosine"`` (default: from ``lr`` down to 0 at the last iteration) or ``"constant"``.
    sigma0 : float >= 0 or None, scale of the starting iterates (see :func:`preconditioned_batch`);
        0 makes every score zero, so :math:`W` gets no gradient (the chapter's break-it prompt).

    Returns
    -------
    W, V : ndarray of shape (2d, 2d), the trained layer.
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    W, V = np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    opt = make_optimizer("adam", lr=lr)
    state = opt.init((W, V))
    for t in range(iterations):
        Z, target = preconditioned_batch(rng, batch, n, d, eta, P, sigma0)  # (B, 2d, n + 1), (B, 2d)
        _, dW, dV = one_step_loss(W, V, Z, target)
        lr_t = cosine_lr(lr, t, iterations) if schedule == "cosine" else lr
        (W, V), state = opt.update((W, V), (dW, dV), state, lr=lr_t)
    return W, V


def distance_to_preconditioned(W, V, eta: float, P) -> float:
    r"""Relative distance of (W, V) to the preconditioned construction.

    .. math:: \frac{\sqrt{\|W - W^*\|_F^2 + \|V - V_P\|_F^2}}{\sqrt{\|W^*\|_F^2 + \|V_P\|_F^2}},
              \qquad (W^*, V_P) = \mathrm{preconditioned\_weights}(d, \eta, P)

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d)
    eta : float > 0
    P : ndarray of shape (d, d)

    Returns
    -------
    distance : float >= 0 (1 for W = V = 0).
    """
    Wr, Vr = preconditioned_weights(np.shape(W)[-1] // 2, eta, P)
    num = np.sum((np.asarray(W) - Wr) ** 2) + np.sum((np.asarray(V) - Vr) ** 2)
    return float(np.sqrt(num / (np.sum(Wr ** 2) + np.sum(Vr ** 2))))
