"""Checkers for chapter 08, training a looped model from scratch (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..looped_training import end_loss
from ..training import block_scales, from_blocks
from . import attempt, checker, compare


def _layer(seed: int = 0, d: int = 3):
    rng = np.random.default_rng(seed)
    W, V = rng.standard_normal((2, 2 * d, 2 * d))
    return W, V


@checker("block scales")
def check_block_scales(my_block_scales) -> bool:
    """``my_block_scales(W, V)`` -> (c1, c2) = (-tr(W12)/d, tr(V21)/d)."""
    W, V = _layer()
    got = attempt(my_block_scales, W.copy(), V.copy())
    c1, c2 = block_scales(W, V)
    got = np.asarray(got, dtype=float)
    if got.shape == (2,) and np.allclose(got, [-c1, c2]):
        raise AssertionError("c1 has the wrong sign: the construction has W12 = -I and c1 = +1")
    return compare("(c1, c2)", got, [c1, c2])


@checker("end grad")
def check_end_grad(my_end_grad) -> bool:
    """``my_end_grad(w_L, w_star)`` -> dJ/dw_L of J = mean_b 1/2 ||w_L - w*||^2, shape (B, d)."""
    rng = np.random.default_rng(1)
    w, w_star = rng.standard_normal((2, 5, 3))
    got = attempt(my_end_grad, w.copy(), w_star.copy())
    _, dw = end_loss(w, "w_star", w_star=w_star)
    if np.shape(got) == dw.shape and np.allclose(got, 5 * dw):
        raise AssertionError("missing the 1/B of the batch mean")
    return compare("dJ/dw_L", got, dw)


@checker("project")
def check_project(my_project) -> bool:
    """``my_project(W, V)`` -> layer with W12 = -c1 I, V21 = c2 I (the layer's own c1, c2), every other entry zero."""
    W, V = _layer(2)
    W_in, V_in = W.copy(), V.copy()
    got = attempt(my_project, W_in, V_in)
    if not (np.array_equal(W_in, W) and np.array_equal(V_in, V)):
        raise AssertionError("the arguments were modified: build new arrays")
    d = W.shape[0] // 2
    c1, c2 = block_scales(W, V)
    W_ref, V_ref = from_blocks((-c1 * np.eye(d), np.zeros((d, d)), c2 * np.eye(d)), d)
    compare("projected W", got[0], W_ref)
    compare("projected V", got[1], V_ref)
