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

from .attention import AttentionCache, _check_flags, attention_backward, attention_forward
from .checks import (MAX_DEPTH, InputTypeError, as_float, check_depth, check_layer, check_positive, check_size,
                     check_tokens, check_weights)


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
    check_size("W", (2 * d, 2 * d))
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
    W, V : ndarray of shape (2d, 2d), both the same shape, finite (anything else is refused)
    atol : float >= 0, entries at most this large in absolute value count as zero

    Returns
    -------
    inert : bool
    """
    W, V = _check_weight_pair(W, V)
    check_positive("atol", atol, allow_zero=True)
    d = W.shape[-1] // 2
    return bool(np.all(np.abs(W[d:, :]) <= atol) and np.all(np.abs(V[:d, :]) <= atol)
                and np.all(np.abs(V[:, d:]) <= atol))


def stack_forward(Z, layers, n_context: int, **kwargs) -> tuple[np.ndarray, list]:
    r"""Apply layers :math:`(W_1, V_1), \dots, (W_L, V_L)` in turn (chapter 05).

    Every layer is checked before the first one runs. An empty ``layers`` is the identity:
    ``out`` is a copy of ``Z`` and ``caches`` is empty (as a loop of depth 0).

    Parameters
    ----------
    Z : ndarray of shape (..., D, N)
    layers : sequence of (W, V) pairs, each (D, D); may be empty
    n_context : int
    **kwargs : ``attend_self``, ``query_only`` (each True or False), passed to :func:`attention_forward`;
        any other keyword is refused.

    Returns
    -------
    out : ndarray of shape (..., D, N), a new array
    caches : list of AttentionCache, one per layer
    """
    Z, layers = _check_stack(Z, layers, n_context, kwargs)
    return _stack(Z, layers, n_context, kwargs)


def _stack(Z, layers, n_context: int, options: dict) -> tuple[np.ndarray, list]:
    """:func:`stack_forward` on checked input."""
    caches = []
    for W, V in layers:
        Z, cache = attention_forward(Z, W, V, n_context, **options)
        caches.append(cache)
    return (Z if caches else Z.copy()), caches


def stack_backward(dout, caches) -> tuple[np.ndarray, list]:
    """Backward of :func:`stack_forward`: undo the layers in reverse order.

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient with respect to the output of the last layer; finite
    caches : list of AttentionCache from :func:`stack_forward`; empty for an empty stack

    Returns
    -------
    dZ : ndarray of shape (..., D, N), a new array (a copy of ``dout`` for an empty stack)
    grads : list of (dW, dV) pairs, one per layer, in forward order
    """
    dout, caches = _check_caches(dout, caches)
    return _unstack(dout, caches)


def _unstack(dout, caches) -> tuple[np.ndarray, list]:
    """:func:`stack_backward` on checked input."""
    grads = []
    for cache in reversed(caches):
        dout, dW, dV = attention_backward(dout, cache)
        grads.append((dW, dV))
    return (dout if caches else dout.copy()), grads[::-1]


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
        Both flags must be ``True`` or ``False``.

    Returns
    -------
    Z_L : ndarray of shape (..., D, N), a new array (for ``depth = 0`` a copy of the checked ``Z``)

    Examples
    --------
    >>> from ngdformer import embed, ngd, read_weights, sample_tasks
    >>> X, y, _ = sample_tasks(np.random.default_rng(0), 4, 10, 3)
    >>> W, V = ngd_weights(3, 0.5)
    >>> Z_L = looped_forward(embed(X, y), W, V, 10, 20, query_only=True)
    >>> bool(np.allclose(read_weights(Z_L), ngd(np.zeros((4, 3)), X, y, 0.5, 20)[-1]))
    True
    """
    Z, W, V = _check_loop(Z, W, V, n_context, depth, dict(attend_self=attend_self, query_only=query_only))
    for _ in range(depth):
        Z, _ = attention_forward(Z, W, V, n_context, attend_self=attend_self, query_only=query_only)
    return Z if depth else Z.copy()


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
    **kwargs : ``attend_self``, ``query_only`` (each True or False), passed to
        :func:`ngdformer.attention_forward`; any other keyword is refused.

    Returns
    -------
    Z_L : ndarray of shape (..., D, N), a new array
    caches : list of ``depth`` AttentionCache, in forward order
    """
    Z, W, V = _check_loop(Z, W, V, n_context, depth, kwargs)
    return _stack(Z, [(W, V)] * depth, n_context, kwargs)


def looped_backward(dout, caches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward through the loops: the shared weights collect every application's gradient.

    Parameters
    ----------
    dout : ndarray of shape (..., D, N), gradient with respect to the output Z_L; finite
    caches : list of AttentionCache from :func:`looped_forward_with_cache` (empty for depth 0);
        caches holding different weights (a stack, not a loop) are refused.

    Returns
    -------
    dZ : ndarray of shape (..., D, N), gradient with respect to the input Z_0
    dW, dV : ndarray of shape (D, D), summed over the applications and the batch; float32 if
        the forward pass and ``dout`` were float32
    """
    dout, caches = _check_caches(dout, caches, shared=True)
    dZ, grads = _unstack(dout, caches)
    D = dZ.shape[-2]
    dW = sum((gW for gW, _ in grads), np.zeros((D, D), dZ.dtype))
    dV = sum((gV for _, gV in grads), np.zeros((D, D), dZ.dtype))
    return dZ, dW, dV


# --- validation at the public boundary ------------------------------------------------------------------


def _check_weight_pair(W, V):
    """Validate a layer's weights on their own, without tokens: ``W`` and ``V`` finite, both (D, D), D = 2d > 0."""
    W, V = as_float("W", W, ndim_min=2), as_float("V", V, ndim_min=2)
    D = W.shape[0]
    if W.shape != (D, D) or D == 0 or D % 2:
        raise ValueError(f"W has shape {W.shape}, expected (D, D) with D = 2d even and positive")
    if V.shape != W.shape:
        raise ValueError(f"V has shape {V.shape}, expected {W.shape} (the shape of W)")
    return W, V


_OPTIONS = ("attend_self", "query_only")


def _check_options(options: dict) -> None:
    """Refuse keywords other than the flags of :func:`attention_forward`, and flags that are not bools."""
    for name, value in options.items():
        if name not in _OPTIONS:
            raise InputTypeError(f"unknown option {name}={value!r}: the options are attend_self and query_only")
    _check_flags(**options)


def _describe(value) -> str:
    """A short description of a wrong argument for an error message: its type, and its shape or length."""
    if hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {np.shape(value)}"
    return f"{type(value).__name__} of length {len(value)}" if hasattr(value, "__len__") else type(value).__name__


def _check_stack(Z, layers, n_context: int, options: dict):
    """Validate the input of :func:`stack_forward`: tokens, options, and every layer against the tokens."""
    Z = check_tokens(Z, n_context)
    _check_options(options)
    if not hasattr(layers, "__iter__") or isinstance(layers, (str, bytes)):
        raise InputTypeError(f"layers must be a sequence of (W, V) pairs, got {_describe(layers)}")
    layers = list(layers)
    for k, pair in enumerate(layers):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise InputTypeError(f"layers[{k}] must be a (W, V) pair, got {_describe(pair)}")
        try:
            check_weights(*pair, Z.shape[-2])
        except ValueError as exc:  # name the layer: "layers[2]: V has shape ..."
            raise type(exc)(f"layers[{k}]: {exc}") from None
    return Z, layers


def _check_caches(dout, caches, *, shared: bool = False):
    """Validate the input of a backward pass: a list of AttentionCache (one layer's, if ``shared``) and ``dout``."""
    if isinstance(caches, AttentionCache) or not hasattr(caches, "__iter__"):
        raise InputTypeError(f"caches must be a list of AttentionCache, one per layer, got {_describe(caches)}")
    caches = list(caches)
    for k, cache in enumerate(caches):
        if not isinstance(cache, AttentionCache):
            raise InputTypeError(f"caches[{k}] must be an AttentionCache from the forward pass, got {_describe(cache)}")
        if shared and not (np.array_equal(cache.W, caches[0].W) and np.array_equal(cache.V, caches[0].V)):
            raise ValueError(f"caches[{k}] holds other weights (W, V) than caches[0]: looped_backward needs the "
                             "caches of one shared layer (looped_forward_with_cache); use stack_backward for a stack")
    dout = as_float("dout", dout, ndim_min=2)
    if caches and dout.shape != caches[-1].Z.shape:
        raise ValueError(f"dout has shape {dout.shape}, expected {caches[-1].Z.shape} (the shape of the output)")
    return dout, caches


def _check_loop(Z, W, V, n_context: int, depth: int, options: dict):
    """Validate a looped model's input, at any depth (0 included); refuse a query-only loop that is not exact."""
    check_depth(depth)
    Z, W, V = check_layer(Z, W, V, n_context)
    _check_options(options)
    if options.get("query_only"):
        _check_query_only_exact(W, V, depth)
    return Z, W, V
