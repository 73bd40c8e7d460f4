r"""Gradient descent, normalized gradient descent and the max-margin reference (chapters 01-02, 05).

Shapes: ``w`` (..., d), ``X`` (..., n, d), ``y`` (..., n). The step functions
vectorise over the batch; only the time loop of a trajectory is a Python loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import MAX_DEPTH, InputTypeError, _short, as_float, check_context, check_positive, check_size
from .losses import _GRAD_KERNELS, LOSSES, _margins, _weighted_sum, ngd_coefficients


# ---------------------------------------------------------------------------
# Validation at the public boundary: each public function calls one of these in its first line.
# ---------------------------------------------------------------------------


def _check_loss(loss) -> str:
    """``loss`` must be a key of ``LOSSES``: a string (``TypeError`` otherwise) that it holds (``ValueError``)."""
    if not isinstance(loss, str):
        raise InputTypeError(f"loss must be a name in ngdformer.losses.LOSSES {sorted(LOSSES)}, got {_short(loss)}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    return loss


def _context(w, X, y, w_name: str = "w"):
    """:func:`check_context`, then refuse a broadcast batch whose margins or iterates exceed ``MAX_ELEMENTS``."""
    w, X, y = check_context(w, X, y, w_name=w_name)
    lead = np.broadcast_shapes(w.shape[:-1], X.shape[:-2])  # e.g. a trajectory (T, B) against contexts (B,)
    check_size("the margins of w against X", lead + X.shape[-2:-1])  # (..., n)
    check_size("the iterates of w against X", lead + X.shape[-1:])  # (..., d)
    return w, X, y


def _step_inputs(w, X, y, eta, loss):
    """The checked inputs of one GD or NGD step."""
    eta = float(check_positive("eta", eta))
    return _context(w, X, y) + (eta, _check_loss(loss))


def _step_sizes(eta, steps: int) -> np.ndarray:
    """``eta`` as a float array of shape (steps,): one positive step size, or one per step."""
    try:
        etas = np.asarray(eta)
    except ValueError as exc:  # a ragged list
        raise ValueError(f"eta must be a scalar or a 1-D array of step sizes, got {_short(eta)}") from exc
    if etas.ndim == 0:  # a number (a 0-d array is read as its number)
        eta = check_positive("eta", eta.item() if isinstance(eta, np.ndarray) else eta)
        return np.full(steps, float(eta))
    if etas.dtype.kind not in "iuf":  # bools, strings, objects (such as an int beyond the float range)
        for value in etas.ravel():
            check_positive("eta", value)  # names the first bad entry
        raise InputTypeError(f"eta must be an array of real numbers, got dtype {etas.dtype}")
    if etas.shape != (steps,):
        raise ValueError(f"eta must be a scalar or have one entry per step ({steps}), got shape {etas.shape}")
    etas = etas.astype(float)
    for value in np.unique(etas):
        check_positive("eta", float(value))
    return etas


def _trajectory_inputs(step, w0, X, y, eta, steps, loss):
    """The checked inputs of a trajectory; its (steps + 1, ..., d) result is refused above ``MAX_ELEMENTS``."""
    steps = int(check_positive("steps", steps, integer=True, allow_zero=True, maximum=MAX_DEPTH))
    etas = _step_sizes(eta, steps)
    loss = _check_loss(loss)
    if step is ngd_step:  # a loss that ngd_coefficients does not normalize is refused here, even for steps = 0
        ngd_coefficients(np.zeros(1), np.ones((1, 1)), np.ones(1), loss)
    w, X, y = _context(w0, X, y, w_name="w0")
    shape = (steps + 1,) + np.broadcast_shapes(w.shape[:-1], X.shape[:-2]) + w.shape[-1:]  # as one step returns
    check_size(f"the trajectory of steps = {steps}", shape)
    return w, X, y, etas, loss, shape


# ---------------------------------------------------------------------------
# GD and NGD: one step, and trajectories of steps.
# ---------------------------------------------------------------------------


def gd_step(w, X, y, eta: float, loss: str = "logistic") -> np.ndarray:
    r"""One gradient-descent step, :math:`w \leftarrow w - \eta \nabla L(w)`.

    Parameters
    ----------
    w : ndarray of shape (..., d), the current iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, the step size.
    loss : str, a name in ``ngdformer.losses.LOSSES``, the loss L (default "logistic").

    Returns
    -------
    w_next : ndarray of shape (..., d), the next iterate; leading dimensions of ``w`` and ``X`` broadcast.
        Entries are inf (or NaN) where the true step exceeds the float64 range, as for the exponential
        loss's gradient at margins below about -709 (see ``ngdformer.losses``); :func:`gd` refuses that.
    """
    w, X, y, eta, loss = _step_inputs(w, X, y, eta, loss)
    with np.errstate(over="ignore"):  # an unrepresentable step is inf, as documented
        return w - eta * LOSSES[loss][1](w, X, y)


def ngd_step(w, X, y, eta: float, loss: str = "exp") -> np.ndarray:
    r"""One normalized-gradient-descent step, :math:`w \leftarrow w - \eta \nabla L(w) / L(w)`.

    For the exponential loss (default) this is the softmax-weighted sum

    .. math:: w \leftarrow w + \eta \sum_i p_i(w)\, y_i x_i, \qquad p(w) = \mathrm{softmax}(-m(w)),

    which one constructed attention layer computes exactly (chapter 04).
    Finite at any margin (log-domain weights, see :func:`ngd_coefficients`).

    Parameters
    ----------
    w : ndarray of shape (..., d), the current iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, the step size.
    loss : str, a name in ``ngdformer.losses.LOSSES`` that :func:`ngd_coefficients` normalizes, the loss L
        (default "exp").

    Returns
    -------
    w_next : ndarray of shape (..., d), the next iterate; leading dimensions of ``w`` and ``X`` broadcast.

    Examples
    --------
    >>> from ngdformer import margins, softmax
    >>> X, y, w = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, -1.0]), np.array([1.0, 0.0])
    >>> p = softmax(-margins(w, X, y))  # attention weights on the n = 2 context points
    >>> np.round(ngd_step(w, X, y, eta=0.5), 6), np.round(w + 0.5 * (p * y) @ X, 6)
    (array([ 1.134471, -0.731059]), array([ 1.134471, -0.731059]))
    """
    w, X, y, eta, loss = _step_inputs(w, X, y, eta, loss)
    with np.errstate(over="ignore"):  # only eta * max|x_i| beyond the float64 range overflows
        return w + eta * _weighted_sum(ngd_coefficients(w, X, y, loss), X, y)


def _ngd_step(w, X, y, eta: float) -> np.ndarray:
    r"""Kernel of :func:`ngd_step` (exponential loss) on checked input: :math:`w + \eta \sum_i p_i y_i x_i`."""
    m = _margins(w, X, y)  # (..., n)
    top = np.max(-m, axis=-1, keepdims=True)  # (..., 1) shift by the largest exponent, as ngd_coefficients does
    e = np.exp(-m - top)  # (..., n), in [0, 1]
    p = e / np.sum(e, axis=-1, keepdims=True)  # softmax(-m): the same bits as ngd_coefficients(w, X, y, "exp")
    return w + eta * _weighted_sum(p, X, y)


def _trajectory(step, w0, X, y, eta, steps, loss) -> np.ndarray:
    w, X, y, etas, loss, shape = _trajectory_inputs(step, w0, X, y, eta, steps, loss)
    out = np.empty(shape, dtype=w.dtype)  # (steps + 1, ..., d)
    out[0] = w
    if step is ngd_step:  # the data were checked once above: the loop runs the unchecked kernels
        kernel = _ngd_step if loss == "exp" else (lambda w, X, y, eta: ngd_step(w, X, y, eta, loss))
    else:
        grad = _GRAD_KERNELS[loss]
        kernel = lambda w, X, y, eta: w - eta * grad(w, X, y)  # noqa: E731
    for t in range(shape[0] - 1):  # time loop; each step is vectorised over the batch
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported just below
            out[t + 1] = kernel(out[t], X, y, float(etas[t]))
        finite = np.isfinite(out[t + 1]).all(axis=-1)  # (...,)
        if not np.all(finite):
            bad = tuple(int(i) for i in np.argwhere(np.atleast_1d(~finite))[0])
            raise ValueError(
                f"{step.__name__[:-5]} (loss={loss!r}) left the {out.dtype} range at step {t + 1} of {shape[0] - 1} "
                f"for batch index {bad} with eta = {etas[t]:g}: the step overflowed (as the exponential loss's "
                "gradient does at margins below about -709 in float64, -88 in float32); a smaller eta, another "
                "loss or ngd stays finite"
            )
    return out


def gd(w0, X, y, eta, steps: int, loss: str = "logistic") -> np.ndarray:
    r"""GD trajectory: ``steps`` calls of :func:`gd_step` (chapter 01).

    .. math:: w_{t+1} = w_t - \eta_t \nabla L(w_t)

    Parameters
    ----------
    w0 : ndarray of shape (..., d), the start.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, or ndarray of shape (steps,) with one step size per step.
    steps : int, 0 <= steps <= ``MAX_DEPTH``, the number of steps.
    loss : str, a name in ``ngdformer.losses.LOSSES``, the loss L (default "logistic").

    Returns
    -------
    W : ndarray of shape (steps + 1, ..., d), ``W[0] = w0``; the leading dimensions are
        those of ``w0`` and ``X`` broadcast together.

    Raises
    ------
    ValueError
        for bad input (named), a result of more than ``MAX_ELEMENTS`` entries, or a step that leaves the
        float64 range (GD on the exponential loss far from the data).
    """
    return _trajectory(gd_step, w0, X, y, eta, steps, loss)


def ngd(w0, X, y, eta, steps: int, loss: str = "exp") -> np.ndarray:
    r"""NGD trajectory: ``steps`` calls of :func:`ngd_step` (chapter 02).

    Its direction converges to the max-margin direction of a separable context
    (chapter 05 measures how fast), and ``steps`` applications of the constructed layer
    compute exactly this trajectory (chapter 04).

    .. math:: w_{t+1} = w_t - \eta_t \nabla L(w_t) / L(w_t)

    Parameters
    ----------
    w0 : ndarray of shape (..., d), the start.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, or ndarray of shape (steps,) with one step size per step (per layer).
    steps : int, 0 <= steps <= ``MAX_DEPTH``, the number of steps (layer applications L).
    loss : str, a name in ``ngdformer.losses.LOSSES`` that :func:`ngd_coefficients` normalizes, the loss L
        (default "exp").

    Returns
    -------
    W : ndarray of shape (steps + 1, ..., d), ``W[0] = w0``; the leading dimensions are
        those of ``w0`` and ``X`` broadcast together.

    Examples
    --------
    >>> X, y = np.array([[1.0, 0.5], [-0.5, -1.0]]), np.array([1.0, -1.0])
    >>> W = ngd(np.zeros(2), X, y, 0.5, 3)
    >>> W.shape
    (4, 2)
    >>> np.round(W[-1] / np.linalg.norm(W[-1]), 6)  # the symmetric pair: direction (1, 1) / sqrt(2)
    array([0.707107, 0.707107])
    """
    return _trajectory(ngd_step, w0, X, y, eta, steps, loss)


def normalized_margin(w, X, y) -> np.ndarray:
    r"""Normalized margin of ``w``: its worst margin per unit norm (chapter 01).

    .. math:: \gamma(w) = \min_i m_i(w) / \|w\| = \min_i y_i \langle u, x_i\rangle, \qquad u = w / \|w\|

    Computed through the unit vector u, so it is invariant to the scale of ``w`` (any finite
    nonzero ``w``, 1e-300 or 1e300) and scales with ``X``: :math:`\gamma(w; cX) = c\,\gamma(w; X)`.

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    gamma : ndarray of shape (...), zero where ``w = 0``; leading dimensions of ``w`` and ``X`` broadcast.
    """
    w, X, y = _context(w, X, y)
    big = np.max(np.abs(w), axis=-1, keepdims=True)  # (..., 1)
    v = w / np.where(big > 0, big, 1.0)  # entries in [-1, 1]: its norm neither overflows nor underflows
    norm = np.linalg.norm(v, axis=-1, keepdims=True)  # (..., 1), in [1, sqrt(d)] or 0
    u = v / np.where(norm > 0, norm, 1.0)  # the unit vector, or 0 where w = 0
    return np.min(_margins(u, X, y), axis=-1)


# ---------------------------------------------------------------------------
# Max-margin solution through the dual (box-constrained QP), vectorised over the batch.
# ---------------------------------------------------------------------------


class MaxMarginResult(NamedTuple):
    """Hard-margin solution with its dual certificate (see :func:`kkt_residuals`)."""

    w: np.ndarray  #: (..., d) primal solution w_mm = sum_i a_i y_i x_i, float64
    a: np.ndarray  #: (..., n) dual variables a_i >= 0, large only on the support vectors
    iterations: int  #: number of interior-point (Newton) steps taken for the whole batch


def _kkt_inputs(w, X, y, a):
    """The checked inputs of :func:`kkt_residuals`: ``a`` finite, with one entry per example."""
    w, X, y = _context(w, X, y)
    a = as_float("a", a, ndim_min=1)
    try:  # a's leading dimensions broadcast like w's; its last one must be n, never broadcast from 1
        lead = np.broadcast_shapes(w.shape[:-1], X.shape[:-2], a.shape[:-1])
        ok = a.shape[-1] == X.shape[-2]
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"a has shape {a.shape} but y has shape {y.shape}; expected a.shape == {y.shape}, "
                         "one dual variable a_i per example (or leading dimensions that broadcast)")
    check_size("the margins of w against X", lead + a.shape[-1:])
    dtype = np.result_type(w, a)  # float64 unless every input is float32
    return (*(v.astype(dtype, copy=False) for v in (w, X, y, a)), lead)


def kkt_residuals(w, X, y, a) -> dict:
    r"""KKT residuals and duality gap of a hard-margin pair (w, a); each entry has shape (...).

    Primal :math:`\min \tfrac12\|w\|^2` s.t. :math:`m_i(w) \ge 1`; dual
    :math:`\max \mathbf 1^\top a - \tfrac12 a^\top G a`, :math:`a \ge 0`, with
    :math:`w = \sum_i a_i y_i x_i` at the optimum. All five are zero exactly at the optimum.
    ``dual`` is in the units of ``a`` (which scale like :math:`1/|x|^2`), the other four are
    relative, so they do not depend on the scale of ``X``.

    Parameters
    ----------
    w : ndarray of shape (..., d), the primal candidate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    a : ndarray of shape (..., n), the dual candidate, one entry per example (its leading dimensions
        broadcast like those of ``w``); all inputs finite.

    Returns
    -------
    dict of str to ndarray of shape (...), with keys
        ``primal`` :math:`\max(0, 1 - \min_i m_i)`, ``dual`` :math:`\max(0, -\min_i a_i)`,
        ``stationarity`` :math:`\|w - \sum_i a_i y_i x_i\| / \|w\|`,
        ``slackness`` :math:`\max_i a_i |m_i - 1| / \sum_i a_i`,
        ``gap`` relative duality gap :math:`|\tfrac12\|w\|^2 - (\mathbf 1^\top a - \tfrac12\|w\|^2)| / \tfrac12\|w\|^2`.
        The denominators are floored at 1e-300 (1.2e-38 in float32); a ratio beyond the float range
        (``w = 0`` with ``a != 0``, say) is inf, never a small number.
    """
    w, X, y, a, lead = _kkt_inputs(w, X, y, a)
    m = _margins(w, X, y)
    u = _weighted_sum(a, X, y)
    ww = np.sum(w * w, axis=-1)
    sa = np.sum(a, axis=-1)
    floor = max(1e-300, float(np.finfo(m.dtype).tiny))  # 1e-300, or float32's smallest normal number
    with np.errstate(over="ignore"):  # a ratio beyond the float range is inf, as documented
        out = {
            "primal": np.maximum(0.0, 1.0 - m.min(axis=-1)),
            "dual": np.maximum(0.0, -a.min(axis=-1)),
            "stationarity": np.linalg.norm(w - u, axis=-1) / np.maximum(np.sqrt(ww), floor),
            "slackness": np.max(np.abs(a * (m - 1.0)), axis=-1) / np.maximum(sa, floor),
            "gap": np.abs(ww - sa) / np.maximum(0.5 * ww, floor),
        }
    return {key: np.broadcast_to(v, lead).copy() if v.shape != lead else v for key, v in out.items()}  # all (...)


def _pinv(A) -> np.ndarray:
    r"""Pseudo-inverse with the round-off cutoff :math:`\sigma_i \le \max(m, k)\,\epsilon\,\sigma_1`.

    The same tolerance as ``np.linalg.matrix_rank``: an SVD computes a singular value
    that is zero in exact arithmetic as anything up to about that size, and what it
    returns below it depends on the LAPACK build, so those values are treated as zero
    rather than inverted. Batched over leading dimensions; ``A`` has shape (..., m, k).
    """
    U, sv, Vt = np.linalg.svd(A, full_matrices=False)  # (..., m, r), (..., r), (..., r, k)
    cutoff = max(A.shape[-2:]) * np.finfo(A.dtype).eps * sv[..., :1]  # (..., 1)
    keep = sv > cutoff
    inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)  # (..., r)
    return np.swapaxes(Vt, -1, -2) @ (inv[..., :, None] * np.swapaxes(U, -1, -2))  # (..., k, m)


def _polish(M, support) -> np.ndarray:
    r"""Exact dual on a guessed support S: :math:`a_S = G_{SS}^{+}\mathbf 1`, batched and masked.

    With :math:`P = M_S^{+}` (rows outside S zeroed), :math:`w = P\mathbf 1_S` is the
    least-norm w with :math:`m_i(w) = 1` on S, and :math:`a = P^\top w`; cost O(n d^2).
    The zeroed rows make :math:`M_S` rank-deficient by construction, so the cutoff of
    :func:`_pinv` decides which singular values are real.

    One step of iterative refinement follows: the margins on S miss 1 by the SVD's round-off
    times the condition of :math:`G_{SS}` (4e-9 for two support vectors of very different
    lengths, more than the certificate allows), and solving once more for that residual,
    :math:`a \leftarrow a + P^\top P (\mathbf 1_S - m_S)`, brings it down to about 1e-13.
    In exact arithmetic the correction is 0 (the residual of a least-norm solution is orthogonal
    to the range of :math:`M_S`).
    """
    P = _pinv(np.where(support[..., None], M, 0.0))  # (..., d, n)
    Pt = np.swapaxes(P, -1, -2)  # (..., n, d)
    w = P @ support.astype(M.dtype)[..., None]  # (..., d, 1)
    a = (Pt @ w)[..., 0]  # (..., n)
    m = M @ np.einsum("...n,...nd->...d", a, M)[..., None]  # (..., n, 1) margins of w = M^T a
    r = np.where(support[..., None], 1.0 - m, 0.0)  # (..., n, 1) the residual on S
    return a + (Pt @ (P @ r))[..., 0]  # (..., n)


def _certified(M, a, tol: float, unit) -> np.ndarray:
    r"""Boolean (...,): does the dual ``a`` of the context ``M`` satisfy the KKT conditions to ``tol``?

    ``unit`` (...,) is the size of a dual variable of ``M``, :math:`1/\rho^2` for data of norm about
    :math:`\rho`: the tolerances on ``a`` and ``|w|^2`` are relative to ``sum(a)`` and ``|w|^2`` but
    never below ``unit``, the margins are scale-free, so the test reads the same at every scale of ``M``.
    (A small margin makes the duals large, :math:`\sum_i a_i = |w|^2 = 1/\gamma^2`; their round-off,
    negative entries included, is relative to that size.)
    """
    w = np.einsum("...n,...nd->...d", a, M)
    m = M @ w[..., None]
    m = m[..., 0]
    ww = np.sum(w * w, axis=-1)
    sa = np.sum(a, axis=-1)
    scale = 1.0 + np.sqrt(ww) * np.linalg.norm(M, axis=-1).max(axis=-1)  # round-off size of a margin
    ok = (a.min(axis=-1) >= -tol * np.maximum(sa, unit)) & (m.min(axis=-1) >= 1.0 - tol * scale)
    ok &= np.max(np.abs(a * (m - 1.0)), axis=-1) <= tol * np.maximum(sa, unit)
    ok &= np.abs(ww - sa) <= tol * np.maximum(ww, unit)
    return ok


def _ipm_step(M, Mt, w, a, s, done):
    """One damped Newton step of the primal-dual interior-point method (centring sigma = 0.1)."""
    d = M.shape[-1]
    mu = np.mean(a * s, axis=-1, keepdims=True)  # (..., 1) duality measure
    r_d = w - np.einsum("...dn,...n->...d", Mt, a)  # (..., d) stationarity residual
    r_p = np.einsum("...nd,...d->...n", M, w) - s - 1.0  # (..., n) primal residual
    r_c = 0.1 * mu - a * s  # (..., n) centring target sigma * mu
    D = a / s
    H = np.eye(d) + Mt @ (D[..., :, None] * M)  # (..., d, d)
    rhs = -r_d + np.einsum("...dn,...n->...d", Mt, r_c / s - D * r_p)
    broken = ~(np.isfinite(H).all(axis=(-1, -2)) & np.isfinite(rhs).all(axis=-1))  # only on bad data
    H = np.where((done | broken)[..., None, None], np.eye(d), H)  # certified tasks stay put
    rhs = np.where((done | broken)[..., None], 0.0, rhs)
    dw = (_pinv(H) @ rhs[..., None])[..., 0]  # never raises when H is ill-conditioned
    dw = np.where(broken[..., None], np.nan, dw)  # flagged as diverged by the caller
    da = r_c / s - D * (np.einsum("...nd,...d->...n", M, dw) + r_p)
    ds = (r_c - s * da) / a
    ratio = np.minimum(np.where(da < 0, -a / np.where(da < 0, da, -1.0), np.inf),
                       np.where(ds < 0, -s / np.where(ds < 0, ds, -1.0), np.inf))
    alpha = np.minimum(1.0, 0.99 * ratio.min(axis=-1, keepdims=True))  # keep a, s > 0
    alpha = np.where(done[..., None], 0.0, alpha)
    w, a, s = w + alpha * dw, a + alpha * da, s + alpha * ds
    return w, a, s


def _raise_not_separable(mask, why: str):
    bad = tuple(int(i) for i in np.argwhere(np.atleast_1d(mask))[0])
    raise ValueError(f"the context (X, y) at batch index {bad} is not linearly separable through the origin ({why}); "
                     "max_margin needs separable data")


#: The range :func:`max_margin_dual` accepts for each task's largest :math:`|x_{ij}|`: its dual
#: variables scale like :math:`1/|x|^2` and must stay far inside the float64 range.
X_SCALE_RANGE = (1e-100, 1e100)


def _max_margin_inputs(X, y, tol, max_iter, min_margin) -> np.ndarray:
    """The checked inputs of :func:`max_margin_dual`; returns the rows :math:`y_i x_i` as M (..., n, d), float64."""
    check_positive("tol", tol, maximum=1e-2)
    check_positive("max_iter", max_iter, integer=True, maximum=MAX_DEPTH)
    check_positive("min_margin", min_margin, allow_zero=True)
    if min_margin >= 1:  # every convex combination of the y_i x_i lies within max|x_i| of the origin
        raise ValueError(f"min_margin must be < 1 (1 or more rejects every context), got {_short(min_margin)}")
    _, X, y = check_context(None, X, y)
    if X.shape[-1] == 0:
        raise ValueError(f"X has shape {X.shape} with d = 0 features: no context is separable through the origin")
    M = y.astype(np.float64)[..., None] * X.astype(np.float64)  # (..., n, d) rows y_i x_i
    check_size("the Newton matrices (..., d, d) of max_margin", M.shape[:-2] + M.shape[-1:] * 2)
    big = np.abs(M).max(axis=(-2, -1))  # (...,) each task's largest |x_ij|
    if np.any(big == 0):
        _raise_not_separable(big == 0, "every x_i is zero")
    low, high = X_SCALE_RANGE
    outside = (big < low) | (big > high)
    if np.any(outside):
        bad = tuple(int(i) for i in np.argwhere(np.atleast_1d(outside))[0])
        raise ValueError(f"X at batch index {bad} has largest entry {float(np.atleast_1d(big)[bad]):.3g}; "
                         f"max_margin accepts each task's largest |x_ij| in [{low:g}, {high:g}] "
                         "(its dual variables scale like 1/|x|^2)")
    return M


def max_margin_dual(X, y, *, tol: float = 1e-10, max_iter: int = 200, min_margin: float = 1e-9) -> MaxMarginResult:
    r"""Hard-margin (max-margin) classifier through the origin, with its dual variables (chapter 02).

    .. math:: \min_w \tfrac12\|w\|^2 \ \text{s.t.}\ Mw \ge \mathbf 1, \qquad
              \min_{a \ge 0}\ \tfrac12 a^\top G a - \mathbf 1^\top a, \qquad
              M_{i\cdot} = y_i x_i^\top,\ G = M M^\top,\ w_{mm} = M^\top a

    A primal-dual interior-point method on the whole batch at once: with slacks
    :math:`s = Mw - \mathbf 1` and centring :math:`a_i s_i = \sigma\mu`, each Newton step
    solves one d x d system :math:`(I + M^\top \mathrm{diag}(a/s) M)\,\Delta w = r`.
    After each step the support :math:`S = \{a_i > s_i\}` is read off and
    :math:`G_{SS} a_S = \mathbf 1` solved exactly; a task is done when that solution, or
    the iterate itself (needed when tied points make the dual degenerate), passes the
    KKT conditions to ``tol`` (:func:`kkt_residuals` reports them).

    The solution is scale-equivariant: the max-margin vector of :math:`cX` is :math:`w_{mm}/c`
    and its dual :math:`a/c^2`. So each task is solved on its context divided by the power of
    two :math:`\rho` nearest above its largest :math:`|x_i|` (an exact rescaling), mapped back
    (:math:`w/\rho`, :math:`a/\rho^2`) and certified on the original context, with the
    tolerances on ``a`` and :math:`|w|^2` relative to :math:`1/\rho^2`: the same direction
    and the same certificate at every scale of ``X``.

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs x_i; each task's largest
        :math:`|x_{ij}|` between 1e-100 and 1e100 (``ngdformer.solvers.X_SCALE_RANGE``).
    y : ndarray of shape (..., n), labels in {-1, +1}.
    tol : float, 0 < tol <= 1e-2, tolerance of the KKT certificate (default 1e-10).
    max_iter : int, 1 <= max_iter <= ``MAX_DEPTH``, maximum number of Newton steps (default 200).
    min_margin : float, 0 <= min_margin < 1, the separability test: a context whose convex hull of the
        :math:`y_i x_i` comes within ``min_margin * max_i |x_i|`` of the origin is
        rejected as not separable (default 1e-9).

    Returns
    -------
    result : MaxMarginResult
        ``w`` of shape (..., d), ``a`` of shape (..., n) (both float64) and ``iterations``.

    Raises
    ------
    ValueError
        if a context is not linearly separable through the origin: some convex combination
        of the :math:`y_i x_i` lies within ``min_margin * max_i |x_i|`` of the origin (Gordan's
        certificate; separable data keep it at least the margin away), or if no certificate
        is reached in ``max_iter`` Newton steps (seen only for margins below ~1e-3 with
        hundreds of points in 2-3 dimensions); and for bad arguments, each named.
    """
    M = _max_margin_inputs(X, y, tol, max_iter, min_margin)  # (..., n, d) rows y_i x_i, float64
    lead, (n, d) = M.shape[:-2], M.shape[-2:]
    e = np.asarray(np.frexp(np.linalg.norm(M, axis=-1).max(axis=-1))[1])  # (...,) 2^(e-1) <= max_i |x_i| < 2^e
    Ms = np.ldexp(M, -e[..., None, None])  # (..., n, d) the same context with max_i |x_i| in [1/2, 1), exactly
    unit = np.ldexp(1.0, -2 * e)  # (...,) a dual of M is unit times the dual of Ms (exactly: a power of two)
    Mt = np.swapaxes(Ms, -1, -2)  # (..., d, n)
    xmax = np.linalg.norm(Ms, axis=-1).max(axis=-1)  # (...,)
    w, s, a = np.zeros(lead + (d,)), np.ones(lead + (n,)), np.ones(lead + (n,))
    done = np.zeros(lead, dtype=bool)
    result = np.zeros(lead + (n,))  # the certified duals of the original context
    for it in range(1, max_iter + 1):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # overflows only on non-separable data
            w, a, s = _ipm_step(Ms, Mt, w, a, s, done)
        diverged = ~(np.isfinite(a).all(axis=-1) & np.isfinite(s).all(axis=-1) & np.isfinite(w).all(axis=-1))
        if np.any(diverged & ~done):
            _raise_not_separable(diverged & ~done, "the interior-point iterates diverged")
        for cand in (_polish(Ms, a > s), a):  # exact solve on the support guess; the iterate itself
            cand = cand * unit[..., None]  # mapped back: the dual of the original context
            ok = _certified(M, cand, tol, unit) & ~done  # certified on the original context
            result = np.where(ok[..., None], np.maximum(cand, 0.0), result)
            done |= ok
        if np.all(done):
            w = np.einsum("...n,...nd->...d", result, M)
            return MaxMarginResult(w, result, it)
        # Gordan certificate: for separable data |M^T a| >= gamma * sum(a) for every a >= 0.
        hull = np.linalg.norm(np.einsum("...dn,...n->...d", Mt, a), axis=-1) / a.sum(axis=-1)
        blown = (hull < min_margin * xmax) & ~done
        if np.any(blown):
            _raise_not_separable(blown, f"a convex combination of the y_i x_i lies within {min_margin:g} * max|x| of 0")
    bad = tuple(int(i) for i in np.argwhere(np.atleast_1d(~done))[0])
    raise ValueError(
        f"max_margin found no certificate to tol={tol:g} in {max_iter} iterations for batch index {bad}; "
        "the context is not separable through the origin or its margin is tiny"
    )


def max_margin(X, y, *, tol: float = 1e-10, max_iter: int = 200, min_margin: float = 1e-9) -> np.ndarray:
    r"""Hard-margin direction :math:`w_{mm} = \arg\min \|w\|^2` s.t. :math:`y_i\langle w, x_i\rangle \ge 1`.

    See :func:`max_margin_dual` for the solver and its certificate (chapters 01, 05); the
    max-margin vector of :math:`cX` is :math:`w_{mm}/c`, at every scale c.

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs x_i; must be separable through the origin.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    tol : float, tolerance of the KKT certificate (default 1e-10), see :func:`max_margin_dual`.
    max_iter : int, maximum number of Newton steps (default 200), see :func:`max_margin_dual`.
    min_margin : float, the separability test (default 1e-9), see :func:`max_margin_dual`.

    Returns
    -------
    w_mm : ndarray of shape (..., d), float64; its normalized margin is :math:`1/\|w_{mm}\|`.

    Examples
    --------
    >>> from ngdformer import normalized_margin
    >>> X, y = np.array([[2.0, 0.0], [0.0, -2.0]]), np.array([1.0, -1.0])  # y_i x_i = 2 e_1, 2 e_2
    >>> w_mm = max_margin(X, y)
    >>> np.round(w_mm, 6), round(float(normalized_margin(w_mm, X, y)), 6)  # margin 1/|w_mm| = sqrt(2)
    (array([0.5, 0.5]), 1.414214)
    """
    return max_margin_dual(X, y, tol=tol, max_iter=max_iter, min_margin=min_margin).w
