"""Checkers for chapter 05, stacking and looping (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..construction import stack_forward
from ..solvers import ngd
from ..tasks import embed, read_weights, sample_tasks
from . import attempt, checker, compare


@checker("stack layers")
def check_stack_layers(my_stack_layers) -> bool:
    """``my_stack_layers(d, etas)`` -> list of (W, V); the stack must perform NGD with step sizes ``etas``."""
    rng = np.random.default_rng(0)
    X, y, _ = sample_tasks(rng, 3, 6, 2)
    w0 = rng.standard_normal((3, 2))
    etas = [0.3, 1.0, 0.05]
    layers = attempt(my_stack_layers, 2, etas)
    layers = list(layers)
    if len(layers) != len(etas):
        raise AssertionError(f"expected {len(etas)} layers (one per step size), got {len(layers)}")
    out, _ = stack_forward(embed(X, y, w0), layers, 6)
    return compare("query column after the stack", read_weights(out), ngd(w0, X, y, np.array(etas), 3)[-1])


@checker("separator segment")
def check_separator_segment(my_separator_segment) -> bool:
    """``my_separator_segment(w, radius)`` -> (2, 2): the two points of <w, x> = 0 at distance ``radius``."""
    w, radius = np.array([3.0, -4.0]), 2.5
    got = attempt(my_separator_segment, w, radius)
    got = np.asarray(got, dtype=float)
    if got.shape != (2, 2):
        raise AssertionError(f"shape {got.shape}, expected (2, 2): one point per row")
    if not np.allclose(got @ w, 0.0, atol=1e-10):
        raise AssertionError("the points must lie on the line <w, x> = 0 (orthogonal to w)")
    if not np.allclose(np.linalg.norm(got, axis=-1), radius):
        raise AssertionError("each point must be at distance `radius` from the origin")
    if not np.allclose(got[0], -got[1]):
        raise AssertionError("the two points must be on opposite sides of the origin")


@checker("norm bound")
def check_norm_bound(my_norm_bound) -> bool:
    r"""``my_norm_bound(X, eta, L)``: the triangle-inequality bound :math:`\eta L \max_i \|x_i\|` on :math:`\|w_L\|`."""
    rng = np.random.default_rng(1)
    X, y, _ = sample_tasks(rng, 1, 8, 3)
    got = attempt(my_norm_bound, X[0], 0.4, 7)
    expected = 0.4 * 7 * np.linalg.norm(X[0], axis=-1).max()
    w7 = ngd(np.zeros(3), X[0], y[0], 0.4, 7)[-1]
    if np.linalg.norm(w7) > float(got) * (1 + 1e-12):
        raise AssertionError(f"not a bound: NGD reached ||w_7|| = {np.linalg.norm(w7):.3f} > {float(got):.3f}")
    return compare("norm bound", got, expected)
