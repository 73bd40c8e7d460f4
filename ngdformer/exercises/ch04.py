"""Checkers for chapter 04, the one-layer construction (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..construction import ngd_weights
from ..tasks import embed, sample_tasks
from ..variants import sink_weights
from . import attempt, checker, compare


def _task(seed: int = 0, B: int = 2, n: int = 5, d: int = 3):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d)
    return X, y, rng.standard_normal((B, d))


@checker("embed")
def check_embed(my_embed) -> bool:
    """``my_embed(X, y, w0)`` must return Z of shape (B, 2d, n + 1) as :func:`ngdformer.embed`."""
    X, y, w0 = _task()
    got = attempt(my_embed, X, y, w0)
    return compare("embed", got, embed(X, y, w0), rtol=0, atol=0)


@checker("ngd weights")
def check_ngd_weights(my_ngd_weights) -> bool:
    """``my_ngd_weights(d, eta)`` must return (W*, V*) as :func:`ngdformer.ngd_weights`."""
    got = attempt(my_ngd_weights, 3, 0.5)
    W, V = ngd_weights(3, 0.5)
    if not (isinstance(got, tuple) and len(got) == 2):
        raise AssertionError("return the pair (W, V)")
    compare("W", got[0], W, rtol=0, atol=0)
    compare("V", got[1], V, rtol=0, atol=0)


@checker("sink weights")
def check_sink_weights(my_sink_weights) -> bool:
    r"""``my_sink_weights(m)`` for margins m of shape (n,): :math:`e^{-m_i}/(1 + \sum_j e^{-m_j})`, finite at m = -1000."""
    m = np.array([0.5, -1.0, 2.0, 0.0])
    got = attempt(my_sink_weights, m)
    X = np.eye(4)  # margins of w = m against these contexts are exactly m
    y = np.ones(4)
    compare("sink weights", got, sink_weights(m, X, y))
    big = np.array([-1000.0, -999.0, 5.0])
    with np.errstate(all="ignore"):
        got_big = np.asarray(my_sink_weights(big), dtype=float)
    if not np.all(np.isfinite(got_big)):
        raise AssertionError("sink weights overflow at m = -1000: shift the exponents by their maximum (include the sink's 0)")
    return compare("sink weights at large negative margins", got_big, sink_weights(big, np.eye(3), np.ones(3)))


@checker("context bottom")
def check_context_bottom(my_context_bottom) -> bool:
    """``my_context_bottom(X, y, eta)``: bottom halves (d, n) of the context columns after one W*, V* layer from w0 = 0.

    X has shape (n, d), y shape (n,) (a single task).
    """
    X, y, _ = _task(seed=1, B=1, n=6, d=3)
    X, y = X[0], y[0]
    got = attempt(my_context_bottom, X, y, 0.4)
    expected = np.repeat((0.4 * np.mean(y[:, None] * X, axis=0))[:, None], 6, axis=1)  # (d, n)
    return compare("context bottom halves", got, expected)
