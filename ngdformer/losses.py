r"""In-context losses on the margins :math:`m_i(w) = y_i\langle w, x_i\rangle` (chapters 01-02).

Every function takes leading batch dimensions: ``w`` (..., d), ``X`` (..., n, d),
``y`` (..., n). Everything is computed in a numerically stable way, so margins of
:math:`\pm 10^4` and :math:`\pm 10^6`, in float64 and in float32, give the true value
rounded to the dtype and no warnings. Where the true value itself exceeds the dtype's
range (the exponential loss and its plain gradient at margins below about -709 in
float64, -88 in float32) it is returned as ``inf`` (``-inf`` for a negative gradient
entry), silently; use :func:`exp_log_loss` or the normalized gradient, which stay finite.

Besides the exponential and logistic losses of chapters 01-02, the squared loss
:math:`(1 - m)^2/2` and the squared hinge :math:`\max(0, 1 - m)^2/2` are here: one
elementwise attention layer takes one GD step on each (chapter 10). ``LOSSES`` maps
every loss name to its (loss, gradient) pair; :func:`ngdformer.gd_step` and
:func:`ngdformer.gd` accept any of them.
"""

from __future__ import annotations

import numpy as np

from .checks import as_float, check_context


def margins(w, X, y) -> np.ndarray:
    r"""Margins of ``w`` on every context point (chapter 01).

    .. math:: m_i(w) = y_i \langle w, x_i\rangle

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    m : ndarray of shape (..., n), the margins; leading dimensions of ``w`` and ``X`` broadcast.
    """
    return _margins(*check_context(w, X, y))


def _margins(w, X, y) -> np.ndarray:
    return y * np.einsum("...nd,...d->...n", X, w)  # (..., n), inputs already checked


def sigmoid(z) -> np.ndarray:
    r"""Logistic function :math:`\sigma(z) = 1/(1+e^{-z}) = e^{\log\sigma(z)}`, overflow-free.

    Through :func:`log_sigmoid`, so it keeps full relative accuracy in the tail
    (:math:`\sigma(-40) \approx 4\cdot 10^{-18}`, not 0), where :math:`\sigma(-m_i)` weights the logistic gradient.

    Parameters
    ----------
    z : array_like of any shape, real and finite (NaN, inf, strings, complex numbers are a
        ``ValueError`` or ``TypeError`` naming ``z``); integers and bools count as float64.

    Returns
    -------
    s : ndarray, the shape of ``z``, entries in [0, 1]; float32 for float32 ``z``, float64 otherwise.
    """
    return _sigmoid(as_float("z", z))


def _sigmoid(z) -> np.ndarray:
    """Kernel of :func:`sigmoid` on checked input (the logistic gradient calls it on its margins)."""
    return np.exp(log_sigmoid(z))


def log_sigmoid(z) -> np.ndarray:
    r"""Log of the logistic function, stable for any finite z.

    .. math:: \log\sigma(z) = -\log(1 + e^{-z})

    Parameters
    ----------
    z : array_like of any shape, finite.

    Returns
    -------
    log_s : ndarray, the shape of ``z``, entries <= 0.
    """
    return -np.logaddexp(0.0, -np.asarray(z))


def logsumexp(a, axis: int = -1) -> np.ndarray:
    r"""Log-sum-exp along ``axis``, shifted by the maximum so it never overflows.

    .. math:: \mathrm{logsumexp}(a) = \max a + \log\sum_i e^{a_i - \max a}

    Parameters
    ----------
    a : array_like of shape (..., n) (any shape; ``axis`` is reduced).
    axis : int, the axis to reduce (default -1).

    Returns
    -------
    out : ndarray, the shape of ``a`` without ``axis``.
    """
    a = np.asarray(a)
    amax = np.max(a, axis=axis, keepdims=True)
    out = amax + np.log(np.sum(np.exp(a - amax), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def _weighted_sum(c, X, y) -> np.ndarray:
    r""":math:`\sum_i c_i y_i x_i`: (..., n) coefficients to a (..., d) vector."""
    return np.einsum("...n,...nd->...d", c * y, X)


def exp_loss(w, X, y) -> np.ndarray:
    r"""Exponential loss :math:`L(w) = \frac1n\sum_i e^{-m_i(w)}`.

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    L : ndarray of shape (...), one loss per batch entry; ``inf`` if a margin is below about -709.
    """
    with np.errstate(over="ignore"):  # a true value above ~1e308 rounds to inf, documented above
        return np.exp(exp_log_loss(w, X, y))


def exp_log_loss(w, X, y) -> np.ndarray:
    r"""Log of the exponential loss, finite at any margin (chapter 02).

    .. math:: \log L(w) = \mathrm{logsumexp}(-m) - \log n

    Plain GD on this function is exactly NGD on the exponential loss.

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    log_L : ndarray of shape (...), one value per batch entry.
    """
    m = margins(w, X, y)
    return logsumexp(-m, axis=-1) - float(np.log(m.shape[-1]))  # a Python float keeps float32 inputs float32


def _exp_loss_grad(w, X, y) -> np.ndarray:
    """Kernel of :func:`exp_loss_grad` on checked input."""
    m = _margins(w, X, y)
    with np.errstate(over="ignore", invalid="ignore"):
        dw = -_weighted_sum(np.exp(-m) / m.shape[-1], X, y)
    if np.all(np.isfinite(dw)):
        return dw
    return _exp_loss_grad_overflow(m, X, y)  # an overflow: inf * 0 or inf - inf gave NaN, or the true value is inf


def _exp_loss_grad_overflow(m, X, y) -> np.ndarray:
    r"""The exponential loss's gradient where some :math:`e^{-m_i}` overflow, entry by entry in the log domain.

    Entry j is :math:`-(P_j - N_j)` with :math:`P_j, N_j` the sums of :math:`e^{-m_i}|y_i x_{ij}|/n` over
    the examples with :math:`y_i x_{ij} > 0` and :math:`< 0`. Both are computed shifted by the largest
    exponent of entry j, so the result is the true value rounded: ``-inf`` or ``inf`` where it
    exceeds the dtype's range, finite where it does not (an example with :math:`x_{ij} = 0` adds 0,
    not ``inf * 0 = NaN``), and 0 only where the two sums cancel exactly.
    """
    M = y[..., None] * X  # (..., n, d) rows y_i x_i
    nonzero = M != 0
    log_M = np.log(np.abs(np.where(nonzero, M, 1.0)))
    a = np.where(nonzero, -m[..., None] + log_M, -np.inf)  # (..., n, d) log of e^{-m_i} |y_i x_ij|
    top = np.max(a, axis=-2, keepdims=True)  # (..., 1, d)
    top = np.where(np.isfinite(top), top, 0.0)  # an entry with every y_i x_ij = 0: both sums are 0
    e = np.exp(a - top)  # (..., n, d), in [0, 1]
    diff = np.sum(np.where(M > 0, e, 0.0), axis=-2) - np.sum(np.where(M < 0, e, 0.0), axis=-2)  # (..., d)
    log_n = np.log(m.shape[-1]).astype(m.dtype)
    with np.errstate(over="ignore", divide="ignore"):
        magnitude = np.exp(top[..., 0, :] - log_n + np.log(np.abs(diff)))  # log|0| = -inf gives 0
    return -np.sign(diff) * magnitude


def _logistic_loss_grad(w, X, y) -> np.ndarray:
    """Kernel of :func:`logistic_loss_grad` on checked input."""
    m = _margins(w, X, y)
    return -_weighted_sum(_sigmoid(-m) / m.shape[-1], X, y)


def exp_loss_grad(w, X, y) -> np.ndarray:
    r"""Gradient of the exponential loss with respect to ``w`` (chapter 01).

    .. math:: \nabla L(w) = -\frac1n\sum_i e^{-m_i} y_i x_i

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    dw : ndarray of shape (..., d), the gradient. Where an entry's true value exceeds the dtype's range
        (a margin below about -709 in float64) it is ``-inf`` or ``inf``, never NaN; an entry that
        no overflowing example reaches (``x_ij = 0`` there) stays finite.
    """
    return _exp_loss_grad(*check_context(w, X, y))


def logistic_loss(w, X, y) -> np.ndarray:
    r"""Logistic loss of ``w`` on the context (chapter 01).

    .. math:: L(w) = \frac1n\sum_i \log(1 + e^{-m_i(w)})

    Computed as ``np.logaddexp(0, -m)``: finite for any finite margin.

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    L : ndarray of shape (...), one loss per batch entry.
    """
    m = margins(w, X, y)
    return np.mean(np.logaddexp(0.0, -m), axis=-1)


def logistic_loss_grad(w, X, y) -> np.ndarray:
    r"""Gradient of the logistic loss with respect to ``w`` (chapter 01).

    .. math:: \nabla L(w) = -\frac1n\sum_i \sigma(-m_i) y_i x_i

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    dw : ndarray of shape (..., d), the gradient.
    """
    return _logistic_loss_grad(*check_context(w, X, y))


def squared_loss(w, X, y) -> np.ndarray:
    r"""Squared loss on the margins, :math:`L(w) = \frac1n\sum_i \tfrac12 (1 - m_i(w))^2` (chapter 10).

    With labels :math:`\pm 1` it is least squares on the targets :math:`y_i`:
    :math:`(1 - m_i)^2 = (y_i - \langle w, x_i\rangle)^2`. One GD step on it is one linear
    attention layer with a unit bias, :math:`\varphi(s) = 1 + s` (chapter 10).

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    L : ndarray of shape (...), one loss per batch entry.
    """
    r = 1.0 - margins(w, X, y)  # (..., n) residuals
    return np.mean(0.5 * r * r, axis=-1)


def _squared_loss_grad(w, X, y) -> np.ndarray:
    """Kernel of :func:`squared_loss_grad` on checked input."""
    m = _margins(w, X, y)
    return -_weighted_sum((1.0 - m) / m.shape[-1], X, y)


def squared_loss_grad(w, X, y) -> np.ndarray:
    r"""Gradient of the squared loss with respect to ``w`` (chapter 10).

    .. math:: \nabla L(w) = -\frac1n\sum_i (1 - m_i)\, y_i x_i

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    dw : ndarray of shape (..., d), the gradient.
    """
    return _squared_loss_grad(*check_context(w, X, y))


def squared_hinge_loss(w, X, y) -> np.ndarray:
    r"""Squared hinge loss, :math:`L(w) = \frac1n\sum_i \tfrac12 \max(0, 1 - m_i(w))^2` (chapter 10).

    Exactly 0 once every margin is at least 1. One GD step on it is one ReLU attention
    layer, :math:`\varphi(s) = \max(0, 1 + s)` (chapter 10).

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    L : ndarray of shape (...), one loss per batch entry.
    """
    r = np.maximum(1.0 - margins(w, X, y), 0.0)  # (..., n) hinge residuals
    return np.mean(0.5 * r * r, axis=-1)


def _squared_hinge_loss_grad(w, X, y) -> np.ndarray:
    """Kernel of :func:`squared_hinge_loss_grad` on checked input."""
    m = _margins(w, X, y)
    return -_weighted_sum(np.maximum(1.0 - m, 0.0) / m.shape[-1], X, y)


def squared_hinge_loss_grad(w, X, y) -> np.ndarray:
    r"""Gradient of the squared hinge loss with respect to ``w`` (chapter 10).

    .. math:: \nabla L(w) = -\frac1n\sum_i \max(0, 1 - m_i)\, y_i x_i

    Continuous (the loss is once continuously differentiable); examples with margin at
    least 1 contribute nothing.

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    dw : ndarray of shape (..., d), the gradient.
    """
    return _squared_hinge_loss_grad(*check_context(w, X, y))


def _log_logistic_terms(m) -> np.ndarray:
    r""":math:`\log\log(1+e^{-m})`, stable also where :math:`\log(1+e^{-m})` underflows (m > 30)."""
    small = np.log(np.logaddexp(0.0, -np.minimum(m, 30.0)))
    big = np.maximum(m, 30.0)
    large = -big + np.log1p(-0.5 * np.exp(-big))  # log(e^{-m} - e^{-2m}/2 + ...), error < 1e-26
    return np.where(m > 30.0, large, small)


def ngd_coefficients(w, X, y, loss: str = "exp") -> np.ndarray:
    r"""Per-example weights :math:`c_i` of the normalized gradient :math:`-\nabla L / L = \sum_i c_i y_i x_i`.

    .. math::
        \text{exp:}\quad c = \mathrm{softmax}(-m), \qquad
        \text{logistic:}\quad c_i = \frac{\sigma(-m_i)}{\sum_j \log(1+e^{-m_j})}

    The exponential weights are a softmax (they sum to 1): the attention weights of
    the constructed layer. The logistic ones are not, but have the same tail
    (chapter 02). Both are ratios of exponentials shifted by the largest exponent of the
    denominator, so they are finite at any margin, and exact to the dtype's rounding even at
    margins of :math:`10^6` (tied margins get equal weights, 1/n each for "exp"); subtracting a
    log-sum-exp instead would lose :math:`\epsilon |m|` (a few percent in float32 at :math:`10^6`).

    The other losses of ``LOSSES`` ("squared", "squared_hinge") are refused: their loss can
    be exactly 0, and their gradient is not a positive combination of the examples.

    Parameters
    ----------
    w : ndarray of shape (..., d), the weight vector(s).
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    loss : {"exp", "logistic"}, which loss to normalize (default "exp").

    Returns
    -------
    c : ndarray of shape (..., n), non-negative weights (summing to 1 for "exp").
    """
    if loss not in ("exp", "logistic"):
        why = (" (its loss can vanish, so -grad L / L is not defined everywhere; use gd_step)"
               if loss in LOSSES else "")
        raise ValueError(f"loss must be 'exp' or 'logistic', got {loss!r}{why}")
    m = margins(w, X, y)
    if loss == "exp":
        log_num = log_den = -m  # c = e^{-m_i} / sum_j e^{-m_j}
    else:
        log_num, log_den = log_sigmoid(-m), _log_logistic_terms(m)  # sigma(-m_i) / sum_j log(1 + e^{-m_j})
    top = np.max(log_den, axis=-1, keepdims=True)  # (..., 1)
    return np.exp(log_num - top) / np.sum(np.exp(log_den - top), axis=-1, keepdims=True)


#: Every loss by name: ``LOSSES[name] = (loss, gradient)``, both with the signature ``(w, X, y)``.
LOSSES = {"exp": (exp_loss, exp_loss_grad), "logistic": (logistic_loss, logistic_loss_grad),
          "squared": (squared_loss, squared_loss_grad),
          "squared_hinge": (squared_hinge_loss, squared_hinge_loss_grad)}

#: The gradient kernels of the losses in ``LOSSES``, for data that is already checked
#: (the solvers' trajectories validate once and then call these in their time loop).
_GRAD_KERNELS = {"exp": _exp_loss_grad, "logistic": _logistic_loss_grad, "squared": _squared_loss_grad,
                 "squared_hinge": _squared_hinge_loss_grad}
