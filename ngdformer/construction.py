r"""The constructed NGD layer, stacked and looped models, and their backward passes (DESIGN.md section 2; chapters 04-05).

With :math:`W^* = \begin{bmatrix}0 & -I\\ 0 & 0\end{bmatrix}`, :math:`V^* = \begin{bmatrix}0 & 0\\ \eta I & 0\end{bmatrix}`
the query column's scores are :math:`-m_i(w)`, its attention weights :math:`p(w) = \mathrm{softmax}(-m(w))`,
and its bottom half becomes :math:`w + \eta\sum_i p_i y_i x_i`: one NGD step on the
exponential loss, exactly.
"""

from __future__ import annotations

import numpy as np

from .attention import attention_backward, attention_forward, query_loop
from .checks import as_float, check_positive


def ngd_weights(d: int, eta: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Weights of the layer that performs one NGD step with step size ``eta`` (chapter 04).

    .. math:: W^* = \begin{bmatrix}0 & -I_d\\ 0 & 0\end{bmatrix},\qquad
              V^* = \begin{bmatrix}0 & 0\\ \eta I_d & 0\end{bmatrix}

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    """
    check_positive("d", d, integer=True)
    check_positive("eta", eta)
    W = np.zeros((2 * d, 2 * d))
    V = np.zeros((2 * d, 2 * d))
    W[:d, d:] = -np.eye(d)  # scores (y_i x_i)^T (-I) w = -m_i(w)
    V[d:, :d] = eta * np.eye(d)  # writes eta * sum_i p_i y_i x_i into the bottom half
    return W, V


def context_is_inert(W, V, atol: float = 0.0) -> bool:
    r"""True if the context columns can never influence the query column over any number of layers.

    That holds when only the blocks :math:`W_{11}, W_{12}, V_{21}` are non-zero: the
    context's top halves never change (:math:`V_{11} = V_{12} = 0`) and their bottom
    halves, which do change, are never read (:math:`W_{21} = W_{22} = 0`, :math:`V_{12} = V_{22} = 0`).
    Then a query-only forward gives the same query column as the full layer, layer after layer.
    """
    W, V = as_float("W", W, ndim_min=2), as_float("V", V, ndim_min=2)
    d = W.shape[-1] // 2
    return bool(np.all(np.abs(W[d:, :]) <= atol) and np.all(np.abs(V[:d, :]) <= atol)
                and np.all(np.abs(V[:, d:]) <= atol))


def stack_forward(Z, layers, n_context: int, **kwargs) -> tuple[np.ndarray, list]:
    r"""Apply layers :math:`(W_1, V_1), \dots, (W_L, V_L)` in turn (chapter 05).

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    layers : sequence of (W, V) pairs, each (D, D)
    n_context : int
    **kwargs : passed to :func:`attention_forward` (``attend_self``, ``query_only``).

    Returns
    -------
    out : ndarray of shape (..., D, N)
    caches : list of AttentionCache, one per layer
    """
    caches = []
    for W, V in layers:
        Z, cache = attention_forward(Z, W, V, n_context, **kwargs)
        caches.append(cache)
    return Z, caches


def stack_backward(dout, caches) -> tuple[np.ndarray, list]:
    """Backward of :func:`stack_forward`: undo the layers in reverse order.

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    grads : list of (dW, dV) pairs, one per layer, in forward order
    """
    grads = []
    for cache in reversed(caches):
        dout, dW, dV = attention_backward(dout, cache)
        grads.append((dW, dV))
    return dout, grads[::-1]


def looped_forward(Z, W, V, n_context: int, layers: int, **kwargs) -> np.ndarray:
    r"""Apply one layer (W, V) ``layers`` times, keeping no caches (chapter 05).

    .. math:: Z_L = f^{\circ L}(Z_0),\qquad f(Z) = Z + V K \mathrm{softmax}(K^\top W Z)

    With :func:`ngd_weights` this is ``layers`` NGD steps with a constant step size.
    Memory does not grow with ``layers``. ``**kwargs`` go to :func:`attention_forward`.

    With ``query_only=True`` the loop runs :func:`ngdformer.attention.query_loop`: one
    validation, one copy, then O(B n D) per loop, the cost of an NGD step. Its last column
    equals the full model's whenever :func:`context_is_inert` ``(W, V)`` (the construction,
    and any weights whose unexcited blocks are zero); the default (full model) also updates
    the context columns' bottom halves, at n times the cost.

    Returns
    -------
    Z_L : ndarray of shape (..., D, N)
    """
    check_positive("layers", layers, integer=True, allow_zero=True)
    options = dict(kwargs)
    if options.pop("query_only", False):
        return query_loop(Z, W, V, n_context, layers, **options)
    for _ in range(layers):
        Z, _ = attention_forward(Z, W, V, n_context, **kwargs)
    return Z


def looped_forward_with_cache(Z, W, V, n_context: int, layers: int, **kwargs) -> tuple[np.ndarray, list]:
    """:func:`looped_forward` that keeps one cache per application, for :func:`looped_backward`."""
    check_positive("layers", layers, integer=True, allow_zero=True)
    return stack_forward(Z, [(W, V)] * layers, n_context, **kwargs)


def looped_backward(dout, caches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward through the loops: the shared weights accumulate every application's gradient.

    Returns
    -------
    dZ : ndarray of shape (..., D, N)
    dW, dV : ndarray of shape (D, D)
    """
    dZ, grads = stack_backward(dout, caches)
    D = caches[0].W.shape[0] if caches else dout.shape[-2]
    dW, dV = np.zeros((D, D)), np.zeros((D, D))
    for gW, gV in grads:
        dW += gW
        dV += gV
    return dZ, dW, dV
