r"""In-context losses on the margins :math:`m_i(w) = y_i\langle w, x_i\rangle` (chapters 01-02).

Every function takes leading batch dimensions: ``w`` (..., d), ``X`` (..., n, d),
``y`` (..., n). Everything is computed in a numerically stable way, so margins of
:math:`\pm 10^4` give finite numbers and no warnings. The one exception is the
exponential loss itself (and its plain gradient) at margins below about -709,
where the true value exceeds the float64 range: there it returns ``inf``
(IEEE rounding), silently; use :func:`exp_log_loss` or the normalized gradient,
which stay finite.
"""

from __future__ import annotations

import numpy as np

from .checks import check_context


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
    z : array_like of any shape, finite.

    Returns
    -------
    s : ndarray, the shape of ``z``, entries in [0, 1].
    """
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
    with np.errstate(over="ignore"):
        c = np.exp(-m) / m.shape[-1]
    return -_weighted_sum(c, X, y)


def _logistic_loss_grad(w, X, y) -> np.ndarray:
    """Kernel of :func:`logistic_loss_grad` on checked input."""
    m = _margins(w, X, y)
    return -_weighted_sum(sigmoid(-m) / m.shape[-1], X, y)


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
    dw : ndarray of shape (..., d), the gradient; entries may be ``inf`` if a margin is below about -709.
    """
    w, X, y = check_context(w, X, y)
    m = _margins(w, X, y)
    with np.errstate(over="ignore"):
        c = np.exp(-m) / m.shape[-1]
    return -_weighted_sum(c, X, y)


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
    w, X, y = check_context(w, X, y)
    m = _margins(w, X, y)
    return -_weighted_sum(sigmoid(-m) / m.shape[-1], X, y)


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
    (chapter 02). Computed in the log domain, so finite at any margin.

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
    m = margins(w, X, y)
    if loss == "exp":
        log_c = -m - logsumexp(-m, axis=-1)[..., None]
    elif loss == "logistic":
        log_c = log_sigmoid(-m) - logsumexp(_log_logistic_terms(m), axis=-1)[..., None]
    else:
        raise ValueError(f"loss must be 'exp' or 'logistic', got {loss!r}")
    return np.exp(log_c)


LOSSES = {"exp": (exp_loss, exp_loss_grad), "logistic": (logistic_loss, logistic_loss_grad)}

#: The gradient kernels of the losses in ``LOSSES``, for data that is already checked
#: (the solvers' trajectories validate once and then call these in their time loop).
_GRAD_KERNELS = {"exp": _exp_loss_grad, "logistic": _logistic_loss_grad}
