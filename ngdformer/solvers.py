r"""Gradient descent, normalized gradient descent and the max-margin reference (chapters 01-02, 05).

Shapes: ``w`` (..., d), ``X`` (..., n, d), ``y`` (..., n). The step functions
vectorise over the batch; only the time loop of a trajectory is a Python loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import as_float, check_context, check_positive
from .losses import _GRAD_KERNELS, LOSSES, _margins, _weighted_sum, logsumexp, ngd_coefficients


def _loss_pair(loss: str):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    return LOSSES[loss]


def gd_step(w, X, y, eta: float, loss: str = "logistic") -> np.ndarray:
    r"""One gradient-descent step, :math:`w \leftarrow w - \eta \nabla L(w)`.

    Parameters
    ----------
    w : ndarray of shape (..., d), the current iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, the step size.
    loss : {"logistic", "exp"}, the loss L (default "logistic").

    Returns
    -------
    w_next : ndarray of shape (..., d), the next iterate; leading dimensions of ``w`` and ``X`` broadcast.
    """
    check_positive("eta", eta)
    w, X, y = check_context(w, X, y)
    return w - eta * _loss_pair(loss)[1](w, X, y)


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
    loss : {"exp", "logistic"}, the loss L (default "exp").

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
    check_positive("eta", eta)
    w, X, y = check_context(w, X, y)
    return w + eta * _weighted_sum(ngd_coefficients(w, X, y, loss), X, y)


def _ngd_step(w, X, y, eta: float) -> np.ndarray:
    r"""Kernel of :func:`ngd_step` (exponential loss) on checked input: :math:`w + \eta \sum_i p_i y_i x_i`."""
    m = _margins(w, X, y)  # (..., n)
    p = np.exp(-m - logsumexp(-m, axis=-1)[..., None])  # softmax(-m), in the log domain
    return w + eta * _weighted_sum(p, X, y)


def _trajectory(step, w0, X, y, eta, steps: int, loss: str) -> np.ndarray:
    check_positive("steps", steps, integer=True, allow_zero=True)
    etas = np.broadcast_to(np.asarray(eta, dtype=float), (steps,)) if np.ndim(eta) == 0 else np.asarray(eta, float)
    if etas.shape != (steps,):
        raise ValueError(f"eta must be a scalar or have one entry per step ({steps}), got shape {etas.shape}")
    for value in np.unique(etas):
        check_positive("eta", float(value))
    w, X, y = check_context(w0, X, y)
    shape = np.broadcast_shapes(w.shape[:-1], X.shape[:-2]) + w.shape[-1:]  # as one step would return
    out = np.empty((steps + 1,) + shape, dtype=w.dtype)
    out[0] = w
    _loss_pair(loss)  # an unknown loss is refused before the loop
    if step is ngd_step:  # the data were checked once above: the loop runs the unchecked kernels
        kernel = _ngd_step if loss == "exp" else (lambda *a: step(*a, loss))
    else:
        grad = _GRAD_KERNELS[loss]
        kernel = lambda w, X, y, eta: w - eta * grad(w, X, y)  # noqa: E731
    for t in range(steps):  # time loop; each step is vectorised over the batch
        out[t + 1] = kernel(out[t], X, y, float(etas[t]))
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
    steps : int >= 0, the number of steps.
    loss : {"logistic", "exp"}, the loss L (default "logistic").

    Returns
    -------
    W : ndarray of shape (steps + 1, ..., d), ``W[0] = w0``; the leading dimensions are
        those of ``w0`` and ``X`` broadcast together.
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
    steps : int >= 0, the number of steps (layer applications L).
    loss : {"exp", "logistic"}, the loss L (default "exp").

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

    .. math:: \gamma(w) = \min_i m_i(w) / \|w\|

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    gamma : ndarray of shape (...), zero where ``w = 0``; leading dimensions of ``w`` and ``X`` broadcast.
    """
    w, X, y = check_context(w, X, y)
    norm = np.linalg.norm(w, axis=-1)
    m_min = np.min(_margins(w, X, y), axis=-1)
    return np.where(norm > 0, m_min / np.where(norm > 0, norm, 1.0), 0.0)


# ---------------------------------------------------------------------------
# Max-margin solution through the dual (box-constrained QP), vectorised over the batch.
# ---------------------------------------------------------------------------


class MaxMarginResult(NamedTuple):
    """Hard-margin solution with its dual certificate (see :func:`kkt_residuals`)."""

    w: np.ndarray  #: (..., d) primal solution w_mm = sum_i a_i y_i x_i, float64
    a: np.ndarray  #: (..., n) dual variables a_i >= 0, large only on the support vectors
    iterations: int  #: number of interior-point (Newton) steps taken for the whole batch


def kkt_residuals(w, X, y, a) -> dict:
    r"""KKT residuals and duality gap of a hard-margin pair (w, a); each entry has shape (...).

    Primal :math:`\min \tfrac12\|w\|^2` s.t. :math:`m_i(w) \ge 1`; dual
    :math:`\max \mathbf 1^\top a - \tfrac12 a^\top G a`, :math:`a \ge 0`, with
    :math:`w = \sum_i a_i y_i x_i` at the optimum.

    Parameters
    ----------
    w : ndarray of shape (..., d), the primal candidate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    a : ndarray of shape (..., n), the dual candidate.

    Returns
    -------
    dict of str to ndarray of shape (...), with keys
        ``primal`` :math:`\max(0, 1 - \min_i m_i)`, ``dual`` :math:`\max(0, -\min_i a_i)`,
        ``stationarity`` :math:`\|w - \sum_i a_i y_i x_i\| / \|w\|`,
        ``slackness`` :math:`\max_i a_i |m_i - 1| / \sum_i a_i`,
        ``gap`` relative duality gap :math:`|\tfrac12\|w\|^2 - (\mathbf 1^\top a - \tfrac12\|w\|^2)| / \tfrac12\|w\|^2`.
    """
    w, X, y = check_context(w, X, y)
    a = as_float("a", a)
    m = _margins(w, X, y)
    u = _weighted_sum(a, X, y)
    ww = np.sum(w * w, axis=-1)
    sa = np.sum(a, axis=-1)
    return {
        "primal": np.maximum(0.0, 1.0 - m.min(axis=-1)),
        "dual": np.maximum(0.0, -a.min(axis=-1)),
        "stationarity": np.linalg.norm(w - u, axis=-1) / np.maximum(np.sqrt(ww), 1e-300),
        "slackness": np.max(np.abs(a * (m - 1.0)), axis=-1) / np.maximum(sa, 1e-300),
        "gap": np.abs(ww - sa) / np.maximum(0.5 * ww, 1e-300),
    }


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
    """
    P = _pinv(np.where(support[..., None], M, 0.0))  # (..., d, n)
    w = P @ support.astype(M.dtype)[..., None]  # (..., d, 1)
    return (np.swapaxes(P, -1, -2) @ w)[..., 0]  # (..., n)


def _certified(M, a, tol: float) -> np.ndarray:
    """Boolean (...,): does ``a`` satisfy the KKT conditions to ``tol``?"""
    w = np.einsum("...n,...nd->...d", a, M)
    m = M @ w[..., None]
    m = m[..., 0]
    ww = np.sum(w * w, axis=-1)
    sa = np.sum(a, axis=-1)
    scale = 1.0 + np.sqrt(ww) * np.linalg.norm(M, axis=-1).max(axis=-1)  # round-off size of a margin
    ok = (a.min(axis=-1) >= -tol) & (m.min(axis=-1) >= 1.0 - tol * scale)
    ok &= np.max(np.abs(a * (m - 1.0)), axis=-1) <= tol * np.maximum(sa, 1.0)
    ok &= np.abs(ww - sa) <= tol * np.maximum(ww, 1.0)
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
    raise ValueError(f"context at batch index {bad} is not linearly separable through the origin ({why}); "
                     "max_margin needs separable data")


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

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    tol : float, tolerance of the KKT certificate (default 1e-10).
    max_iter : int, maximum number of Newton steps (default 200).
    min_margin : float, the separability test: a context whose convex hull of the
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
        hundreds of points in 2-3 dimensions).
    """
    _, X, y = check_context(None, X, y)
    X, y = X.astype(np.float64), y.astype(np.float64)
    M = y[..., None] * X  # (..., n, d) rows y_i x_i
    lead, (n, d) = M.shape[:-2], M.shape[-2:]
    Mt = np.swapaxes(M, -1, -2)  # (..., d, n)
    xmax = np.linalg.norm(M, axis=-1).max(axis=-1)  # (...,)
    w, s, a = np.zeros(lead + (d,)), np.ones(lead + (n,)), np.ones(lead + (n,))
    done = np.zeros(lead, dtype=bool)
    result = np.zeros(lead + (n,))
    for it in range(1, max_iter + 1):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # overflows only on non-separable data
            w, a, s = _ipm_step(M, Mt, w, a, s, done)
        diverged = ~(np.isfinite(a).all(axis=-1) & np.isfinite(s).all(axis=-1) & np.isfinite(w).all(axis=-1))
        if np.any(diverged & ~done):
            _raise_not_separable(diverged & ~done, "the interior-point iterates diverged")
        for cand in (_polish(M, a > s), a):  # exact solve on the support guess; the iterate itself
            ok = _certified(M, cand, tol) & ~done
            result = np.where(ok[..., None], np.maximum(cand, 0.0), result)
            done |= ok
        if np.all(done):
            w = np.einsum("...n,...nd->...d", result, M)
            return MaxMarginResult(w.astype(X.dtype), result, it)
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


def max_margin(X, y, **kwargs) -> np.ndarray:
    r"""Hard-margin direction :math:`w_{mm} = \arg\min \|w\|^2` s.t. :math:`y_i\langle w, x_i\rangle \ge 1`.

    See :func:`max_margin_dual` for the solver and its certificate (chapters 01, 05).

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs x_i; must be separable through the origin.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    **kwargs : ``tol``, ``max_iter``, ``min_margin``, passed to :func:`max_margin_dual`.

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
    return max_margin_dual(X, y, **kwargs).w
