"""Checkers for chapter 06, training one layer (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..training import from_blocks, one_step_batch, one_step_loss, to_blocks
from . import attempt, checker, compare

BLOCKS = ("W11", "W12", "W21", "W22", "V11", "V12", "V21", "V22")
UNEXCITED = frozenset({"W11", "W21", "W22", "V12", "V22"})


@checker("unexcited blocks")
def check_unexcited_blocks(my_unexcited_blocks) -> bool:
    """``my_unexcited_blocks()`` -> the names of the blocks whose one-step gradient is exactly zero for every (W, V)."""
    got = attempt(my_unexcited_blocks)
    got = {str(name).upper() for name in got}
    unknown = got - set(BLOCKS)
    if unknown:
        raise AssertionError(f"unknown block names {sorted(unknown)}; use names like 'W12' (row block, column block)")
    if "V11" in got:
        raise AssertionError("V11 is excited: its gradient (1/B) sum_b V11 u_b u_b^T vanishes only where V11 = 0")
    missing, extra = UNEXCITED - got, got - UNEXCITED
    if missing or extra:
        raise AssertionError(f"missing {sorted(missing)}, wrongly included {sorted(extra)}: write the query column "
                             "q + V K p with q = [0; w0] and K = [yx; 0] block by block")


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    Z, target = one_step_batch(rng, 8, 5, 2, 0.7)
    W, V = 0.3 * rng.standard_normal((2, 4, 4))
    return W, V, Z, target


@checker("gd step")
def check_gd_step(my_gd_step) -> bool:
    """``my_gd_step(W, V, Z, target, lr)`` -> (W, V) after one plain gradient step on :func:`one_step_loss`."""
    W, V, Z, target = _problem()
    args = [a.copy() for a in (W, V, Z, target)]
    got = attempt(my_gd_step, *args, 0.1)
    if not all(np.array_equal(a, b) for a, b in zip(args, (W, V, Z, target))):
        raise AssertionError("the arguments were modified: return new arrays instead of updating in place")
    _, dW, dV = one_step_loss(W, V, Z, target)
    W_new, V_new = got
    if np.allclose(W_new, W + 0.1 * dW) and np.allclose(V_new, V + 0.1 * dV):
        raise AssertionError("the step goes uphill: subtract lr times the gradient")
    compare("W after one step", W_new, W - 0.1 * dW)
    compare("V after one step", V_new, V - 0.1 * dV)


@checker("keep excited")
def check_keep_excited(my_keep_excited) -> bool:
    """``my_keep_excited(W, V)`` -> copies with the five unexcited blocks zeroed (W12, V11, V21 kept)."""
    W, V, _, _ = _problem(1)
    W_in, V_in = W.copy(), V.copy()
    got = attempt(my_keep_excited, W_in, V_in)
    if not (np.array_equal(W_in, W) and np.array_equal(V_in, V)):
        raise AssertionError("the arguments were modified: work on copies")
    W_ref, V_ref = from_blocks(to_blocks(W, V), 2)
    compare("W with excited blocks only", got[0], W_ref)
    compare("V with excited blocks only", got[1], V_ref)
