r"""The constructed NGD layer, stacked and looped models, and their backward passes (chapters 04-05).

These are the textbook versions, loops over :func:`ngdformer.attention_forward`;
:mod:`ngdformer.fast` has the same models, faster.

With :math:`W^* = \begin{bmatrix}0 & -I\\ 0 & 0\end{bmatrix}`, :math:`V^* = \begin{bmatrix}0 & 0\\ \eta I & 0\end{bmatrix}`
the query column's scores are :math:`-m_i(w)`, its attention weights :math:`p(w) = \mathrm{softmax}(-m(w))`,
and its bottom half becomes :math:`w + \eta\sum_i p_i y_i x_i`: one NGD step on the
exponential loss, exactly.
"""

from __future__ import annotations

import numpy as np

from .attention import attention_backward, attention_forward
from .checks import as_float, check_depth, check_positive


def ngd_weights(d: int, eta: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Weights of the layer that performs one NGD step with step size ``eta`` (chapter 04).

    .. math:: W^* = \begin{bmatrix}0 & -I_d\\ 0 & 0\end{bmatrix},\qquad
              V^* = \begin{bmatrix}0 & 0\\ \eta I_d & 0\end{bmatrix}

    The query's scores against the context tokens :math:`y_i x_i` are
    :math:`(y_i x_i)^\top(-I)w = -m_i(w)`, so the attention weights are
    :math:`\mathrm{softmax}(-m(w))`, and :math:`V^*` writes :math:`\eta\sum_i p_i y_i x_i` into
    the bottom half, where the iterate lives: one NGD step on the exponential loss.

    Parameters
    ----------
    d : int >= 1, input dimension (the tokens have D = 2d rows)
    eta : float > 0, the NGD step size

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)

    Examples
    --------
    >>> W, V = ngd_weights(1, 0.5)
    >>> W
    array([[ 0., -1.],
           [ 0.,  0.]])
    >>> V
    array([[0. , 0. ],
           [0.5, 0. ]])
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

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d)
    atol : float >= 0, entries at most this large in absolute value count as zero

    Returns
    -------
    inert : bool
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

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient with respect to the output of the last layer
    caches : list of AttentionCache from :func:`stack_forward`

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


def looped_forward(Z, W, V, n_context: int, depth: int, *, attend_self: bool = False,
                   query_only: bool = False) -> np.ndarray:
    r"""Apply one layer (W, V) ``depth`` times, keeping no caches (chapter 05).

    .. math:: Z_L = f^{\circ L}(Z_0),\qquad f(Z) = Z + V K \mathrm{softmax}(K^\top W Z)

    With :func:`ngd_weights` this is ``depth`` NGD steps with a constant step size.
    Memory does not grow with ``depth``; :func:`ngdformer.fast.looped_forward` is the
    same loop, faster.

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    W, V : ndarray of shape (D, D)
    n_context : int, keys and values are ``Z[..., :n_context]``
    depth : int >= 0, number of applications L
    attend_self : bool, as in :func:`ngdformer.attention_forward`
    query_only : bool. Update only the last column in every application. That is the
        same model only if the context columns cannot feed back into the query
        (:func:`context_is_inert`), so for ``depth > 1`` other weights raise ValueError.

    Returns
    -------
    Z_L : ndarray of shape (..., D, N)

    Examples
    --------
    >>> from ngdformer import embed, ngd, read_weights, sample_tasks
    >>> X, y, _ = sample_tasks(np.random.default_rng(0), 4, 10, 3)
    >>> W, V = ngd_weights(3, 0.5)
    >>> Z_L = looped_forward(embed(X, y), W, V, 10, 20, query_only=True)
    >>> bool(np.allclose(read_weights(Z_L), ngd(np.zeros((4, 3)), X, y, 0.5, 20)[-1]))
    True
    """
    check_depth(depth)
    if query_only:
        _check_query_only_exact(W, V, depth)
    for _ in range(depth):
        Z, _ = attention_forward(Z, W, V, n_context, attend_self=attend_self, query_only=query_only)
    return Z


def _check_query_only_exact(W, V, depth: int) -> None:
    """Refuse a query-only loop that would silently compute a different model than the full one."""
    if depth > 1 and not context_is_inert(W, V):
        raise ValueError(
            "query_only=True would give a different model for these weights: they let the context columns "
            "change and feed back into the query (context_is_inert(W, V) is False), so after more than one "
            "application the query column of the full layer differs from the query-only one. Use "
            "query_only=False for the looped model, or ngdformer.fast.query_loop for the query-column model."
        )


def looped_forward_with_cache(Z, W, V, n_context: int, depth: int, **kwargs) -> tuple[np.ndarray, list]:
    """:func:`looped_forward` that keeps one cache per application, for :func:`looped_backward`.

    Parameters
    ----------
    Z, W, V, n_context, depth : as in :func:`looped_forward`
    **kwargs : ``attend_self``, ``query_only``, passed to :func:`ngdformer.attention_forward`

    Returns
    -------
    Z_L : ndarray of shape (..., D, N)
    caches : list of ``depth`` AttentionCache, in forward order
    """
    check_depth(depth)
    if kwargs.get("query_only"):
        _check_query_only_exact(W, V, depth)
    return stack_forward(Z, [(W, V)] * depth, n_context, **kwargs)


def looped_backward(dout, caches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward through the loops: the shared weights collect every application's gradient.

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient with respect to the output Z_L
    caches : list of AttentionCache from :func:`looped_forward_with_cache` (empty for depth 0)

    Returns
    -------
    dZ : ndarray of shape (..., D, N), gradient with respect to the input Z_0
    dW, dV : ndarray of shape (D, D), summed over the applications and the batch
    """
    dZ, grads = stack_backward(dout, caches)
    D = np.shape(dout)[-2]
    dW = sum((gW for gW, _ in grads), np.zeros((D, D)))
    dV = sum((gV for _, gV in grads), np.zeros((D, D)))
    return dZ, dW, dV
