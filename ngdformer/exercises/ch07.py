"""Checkers for chapter 07, the looped model out of distribution (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..construction import looped_forward, ngd_weights
from ..metrics import normalized_difference
from ..solvers import max_margin, normalized_margin
from ..tasks import embed, read_weights, sample_tasks
from . import attempt, checker, compare


@checker("normalized difference")
def check_normalized_difference(my_normalized_difference) -> bool:
    """``my_normalized_difference(u, v)`` -> ||u/|u| - v/|v||| over the last axis."""
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((2, 3, 4, 5))
    v[0, 0] = 7.0 * u[0, 0]  # same direction, other length: the gap must be 0
    got = attempt(my_normalized_difference, u.copy(), v.copy())
    if np.shape(got) == (3, 4) and np.allclose(got, np.linalg.norm(u - v, axis=-1)):
        raise AssertionError("normalize u and v to unit length before subtracting")
    return compare("normalized difference", got, normalized_difference(u, v))


@checker("margin fraction")
def check_margin_fraction(my_margin_fraction) -> bool:
    """``my_margin_fraction(w, X, y, w_mm)`` -> gamma(w) / gamma(w_mm), shape (B,)."""
    rng = np.random.default_rng(1)
    X, y, w_star = sample_tasks(rng, 4, 12, 3, margin=0.1)
    w_mm = max_margin(X, y)
    w = w_star + 0.3 * rng.standard_normal((4, 3))
    got = attempt(my_margin_fraction, w, X, y, w_mm)
    expected = normalized_margin(w, X, y) / normalized_margin(w_mm, X, y)
    unnormalized = np.min(y * np.einsum("bnd,bd->bn", X, w), -1) / np.min(y * np.einsum("bnd,bd->bn", X, w_mm), -1)
    if np.shape(got) == expected.shape and np.allclose(got, unnormalized):
        raise AssertionError("divide each margin by the length of its weight vector: gamma(w) = min_i m_i(w) / ||w||")
    return compare("margin fraction", got, expected)


@checker("first affected loop")
def check_first_affected_loop(my_first_affected_loop) -> bool:
    """``my_first_affected_loop()`` -> the first loop at which non-zero W11, W22 change the query column (2)."""
    got = attempt(my_first_affected_loop)
    rng = np.random.default_rng(2)
    X, y, _ = sample_tasks(rng, 2, 6, 2)
    W, V = ngd_weights(2, 0.5)
    W22 = W.copy()  # the construction plus random W11 and W22 (the context's own attention becomes non-uniform)
    W22[:2, :2], W22[2:, 2:] = rng.standard_normal((2, 2, 2))
    Z = embed(X, y, rng.standard_normal((2, 2)))
    first = next(t for t in range(1, 6) if not np.allclose(read_weights(looped_forward(Z, W, V, 6, t)),
                                                            read_weights(looped_forward(Z, W22, V, 6, t))))
    if int(got) != first:
        raise AssertionError(f"{got} is not it: W22 meets the keys' bottom halves. When do the context columns' bottom "
                             "halves stop being zero (and equal), and when is the query column next computed from them?")
    return f"{first}, measured here with random W11, W22"
