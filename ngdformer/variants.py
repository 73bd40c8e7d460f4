r"""Variants of the constructed layer: the attention sink and a preconditioned NGD step (chapters 04 and 09).

*Attention sink* (chapter 04). If the query column also attends to itself
(``attend_self=True``) while the weights are :math:`W^*, V^*`, its own score is
:math:`[0; w]^\top W^* [0; w] = 0` and its own value is :math:`V^* [0; w] = 0`, so
the weights become :math:`e^{-m_i} / (1 + \sum_j e^{-m_j})` and the layer performs
one plain GD step on a different loss,

.. math:: \ell_{\text{sink}}(w) = \log\Big(1 + \sum_j e^{-m_j(w)}\Big).

*Preconditioned NGD* (chapter 09). With :math:`V = \begin{bmatrix}0 & 0\\ \eta P & 0\end{bmatrix}`
and :math:`W^*` unchanged, the query's bottom half becomes
:math:`w + \eta P \sum_i p_i(w) y_i x_i = w - \eta P \nabla L(w) / L(w)`.
"""

from __future__ import annotations

import numpy as np

from .attention import softmax
from .checks import InputTypeError, as_float, check_context, check_positive, check_size
from .losses import _margins, _weighted_sum


def _check_margins(w, X, y):
    r"""Validate ``w`` (required), ``X``, ``y``; return them and the margins :math:`m_i = y_i \langle w, x_i\rangle`.

    Finite inputs can still give margins beyond the float range (``w`` of size 1e308); they are
    refused here rather than turned into NaN further down.
    """
    if w is None:
        raise InputTypeError("w must be an array of shape (..., d), got None")
    w, X, y = check_context(w, X, y)
    m = _margins(w, X, y)  # (..., n)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"the margins y_i <w, x_i> overflow ({m[~np.isfinite(m)].ravel()[0]}): w (largest entry "
                         f"{np.max(np.abs(w)):.3g}) and X (largest entry {np.max(np.abs(X)):.3g}) are too large")
    return w, X, y, m


# ---------------------------------------------------------------------------
# Attention sink: GD on log(1 + sum_j exp(-m_j)).
# ---------------------------------------------------------------------------


def _sink_logits(m) -> np.ndarray:
    """Logits ``[0, -m_1, ..., -m_n]`` with the sink first; shape (..., n + 1), from the margins m (..., n)."""
    return np.concatenate([np.zeros(m.shape[:-1] + (1,), dtype=m.dtype), -m], axis=-1)


def _sink_weights(m) -> np.ndarray:
    """Weights of the context keys from checked margins m (..., n); see :func:`sink_weights`."""
    return softmax(_sink_logits(m), axis=-1)[..., 1:]  # (..., n): the sink's weight dropped


def sink_loss(w, X, y) -> np.ndarray:
    r"""The loss a self-attending constructed layer descends (chapter 04).

    .. math:: \ell_{\text{sink}}(w) = \log\Big(1 + \sum_j e^{-m_j(w)}\Big)

    Computed as a logsumexp over :math:`[0, -m_1, \dots, -m_n]`, so finite for any finite margin.

    Parameters
    ----------
    w : ndarray of shape (..., d), the query's weight iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    loss : ndarray of shape (...), one loss per batch entry, > 0.
    """
    _, _, _, m = _check_margins(w, X, y)
    a = _sink_logits(m)
    amax = np.max(a, axis=-1, keepdims=True)  # >= 0 because of the sink logit
    with np.errstate(over="ignore"):  # a - amax below the float range is -inf: a term exp(-inf) = 0
        return amax[..., 0] + np.log(np.sum(np.exp(a - amax), axis=-1))


def sink_weights(w, X, y) -> np.ndarray:
    r"""Attention weights of the context keys when the query also attends to itself (chapter 04).

    .. math:: \tilde p_i(w) = \frac{e^{-m_i(w)}}{1 + \sum_j e^{-m_j(w)}}, \qquad
              1 - \sum_i \tilde p_i = \frac{1}{1 + \sum_j e^{-m_j}} \ \text{(the weight on the query itself)}

    Parameters
    ----------
    w : ndarray of shape (..., d), the query's weight iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    q : ndarray of shape (..., n), non-negative weights of the context keys; they sum to less than 1.
    """
    return _sink_weights(_check_margins(w, X, y)[3])


def sink_loss_grad(w, X, y) -> np.ndarray:
    r"""Gradient of :func:`sink_loss` with respect to ``w`` (chapter 04).

    .. math:: \nabla \ell_{\text{sink}}(w) = -\sum_i \tilde p_i(w)\, y_i x_i, \qquad \tilde p \text{ from } :func:`sink_weights`

    Parameters
    ----------
    w : ndarray of shape (..., d), the query's weight iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.

    Returns
    -------
    dw : ndarray of shape (..., d), the gradient.
    """
    _, X, y, m = _check_margins(w, X, y)
    return -_weighted_sum(_sink_weights(m), X, y)


def sink_step(w, X, y, eta: float) -> np.ndarray:
    r"""One GD step on :func:`sink_loss`: what the self-attending constructed layer does (chapter 04).

    .. math:: w \leftarrow w - \eta \nabla \ell_{\text{sink}}(w) = w + \eta \sum_i \tilde p_i(w)\, y_i x_i

    Parameters
    ----------
    w : ndarray of shape (..., d), the query's weight iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, the step size.

    Returns
    -------
    w_next : ndarray of shape (..., d), the next iterate.
    """
    check_positive("eta", eta)
    w, X, y, m = _check_margins(w, X, y)
    return w + eta * _weighted_sum(_sink_weights(m), X, y)  # w - eta * grad


# ---------------------------------------------------------------------------
# Preconditioned NGD.
# ---------------------------------------------------------------------------


def _check_preconditioner(P, d: int) -> np.ndarray:
    P = as_float("P", P, ndim_min=2)
    if P.shape != (d, d):
        raise ValueError(f"P has shape {P.shape}, expected ({d}, {d})")
    return P


def preconditioned_ngd_step(w, X, y, eta: float, P) -> np.ndarray:
    r"""One preconditioned NGD step on the exponential loss (chapter 09).

    .. math:: w \leftarrow w - \eta P \frac{\nabla L(w)}{L(w)} = w + \eta P \sum_i p_i(w)\, y_i x_i,
              \qquad p(w) = \mathrm{softmax}(-m(w))

    Parameters
    ----------
    w : ndarray of shape (..., d), the query's weight iterate.
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    eta : float > 0, the step size.
    P : ndarray of shape (d, d), the preconditioner (any square matrix; SPD for a descent direction).
        It multiplies the column vector :math:`g = \sum_i p_i y_i x_i` from the left, :math:`P g`
        (as :math:`V_{21} = \eta P` does in :func:`preconditioned_weights`); with iterates stored as
        rows that is ``g @ P.T``, which differs from ``g @ P`` when P is not symmetric.

    Returns
    -------
    w_next : ndarray of shape (..., d), the next iterate; leading dimensions of ``w`` and ``X`` broadcast.
        float32 only if every input (``P`` included) is float32, float64 otherwise.
    """
    check_positive("eta", eta)
    w, X, y, m = _check_margins(w, X, y)
    P = _check_preconditioner(P, X.shape[-1])
    p = softmax(-m, axis=-1)  # (..., n)
    return w + eta * _weighted_sum(p, X, y) @ P.T  # row vectors: (P g)^T = g^T P^T


def preconditioned_weights(d: int, eta: float, P) -> tuple[np.ndarray, np.ndarray]:
    r"""Layer weights that perform one preconditioned NGD step (chapter 09).

    .. math:: W = \begin{bmatrix}0 & -I_d\\ 0 & 0\end{bmatrix},\qquad
              V = \begin{bmatrix}0 & 0\\ \eta P & 0\end{bmatrix}

    ``P = I`` gives :func:`ngdformer.ngd_weights`. Only the block :math:`V_{21}` changes, so the
    context stays inert (:func:`ngdformer.context_is_inert`) and looping the layer runs
    preconditioned NGD.

    Parameters
    ----------
    d : int, input dimension, >= 1.
    eta : float > 0, the step size.
    P : ndarray of shape (d, d), the preconditioner.

    Returns
    -------
    W : ndarray of shape (D, D), D = 2d, the score weights (those of :math:`W^*`).
    V : ndarray of shape (D, D), the value weights, :math:`\eta P` in the bottom-left block.
    """
    check_positive("d", d, integer=True)
    check_positive("eta", eta)
    check_size("W", (2 * d, 2 * d))
    P = _check_preconditioner(P, d)
    W = np.zeros((2 * d, 2 * d))
    V = np.zeros((2 * d, 2 * d))
    W[:d, d:] = -np.eye(d)  # scores -m_i(w), as in W*
    V[d:, :d] = eta * P  # writes eta * P sum_i p_i y_i x_i into the bottom half
    return W, V
