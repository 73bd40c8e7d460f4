"""Checkers for chapter 03, softmax attention by hand (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..attention import attention_backward, attention_forward, softmax, softmax_backward
from . import attempt, checker, compare


@checker("softmax backward")
def check_softmax_backward(my_softmax_backward) -> bool:
    r"""``my_softmax_backward(da, a)``, shapes (n,) -> :math:`ds = a \odot (da - \langle a, da\rangle)`, shape (n,)."""
    rng = np.random.default_rng(0)
    a, da = softmax(rng.standard_normal(5), axis=0), rng.standard_normal(5)
    got = attempt(my_softmax_backward, da, a)
    try:
        return compare("softmax VJP", got, softmax_backward(da, a, axis=0))
    except AssertionError as exc:
        raise AssertionError(f"{exc}. Hint: ds = J^T da with J = diag(a) - a a^T") from None


@checker("softmax jacobian")
def check_softmax_jacobian(my_softmax_jacobian) -> bool:
    r"""``my_softmax_jacobian(a)``, a of shape (n,) -> :math:`\partial a_i/\partial s_j = \mathrm{diag}(a) - aa^\top`, (n, n)."""
    a = softmax(np.array([0.2, -1.0, 1.5, 0.0]), axis=0)
    got = attempt(my_softmax_jacobian, a)
    try:
        return compare("softmax Jacobian", got, np.diag(a) - np.outer(a, a))
    except AssertionError as exc:
        raise AssertionError(f"{exc}. Hint: differentiate a_i = e^(s_i) / sum_k e^(s_k) by s_j; rows sum to 0") from None


@checker("query backward")
def check_query_backward(my_query_backward) -> bool:
    """``my_query_backward(q, K, W, V, g)`` -> (dq, dK, dW, dV) for one query column (chapter 03)."""
    rng = np.random.default_rng(1)
    D, n = 4, 5
    K, q, g = rng.standard_normal((D, n)), rng.standard_normal(D), rng.standard_normal(D)
    W, V = rng.standard_normal((2, D, D))
    got = attempt(my_query_backward, q, K, W, V, g)
    if not (isinstance(got, tuple) and len(got) == 4):
        raise AssertionError("return the tuple (dq, dK, dW, dV)")
    Z = np.concatenate([K, q[:, None]], axis=1)  # (D, n + 1): context columns, then the query
    _, cache = attention_forward(Z, W, V, n, query_only=True)
    dout = np.zeros_like(Z)
    dout[:, -1] = g
    dZ, dW, dV = attention_backward(dout, cache)
    names = ("dq", "dK", "dW", "dV")
    for name, mine, ref in zip(names, got, (dZ[:, -1], dZ[:, :n], dW, dV)):
        compare(name, mine, ref)
