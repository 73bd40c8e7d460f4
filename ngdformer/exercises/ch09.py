"""Checkers for chapter 09, limits (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..attention import attention_forward
from ..construction import looped_forward, ngd_weights
from ..metrics import accuracy
from ..tasks import embed, read_weights, sample_tasks
from ..variants import preconditioned_ngd_step
from . import attempt, checker, compare


def _problem(seed: int = 0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, 3, 7, 3)
    A = rng.standard_normal((3, 3))
    P = A @ A.T + 0.1 * np.eye(3)
    return X, y, scale * rng.standard_normal((3, 3)), P


@checker("precond step")
def check_precond_step(my_precond_step) -> bool:
    r"""``my_precond_step(w, X, y, eta, P)`` must equal :func:`ngdformer.preconditioned_ngd_step`, also at :math:`\|w\| \sim 10^3`."""
    X, y, w, P = _problem()
    got = attempt(my_precond_step, w, X, y, 0.4, P)
    compare("preconditioned step", got, preconditioned_ngd_step(w, X, y, 0.4, P))
    X, y, w, P = _problem(1, scale=1e3)
    with np.errstate(all="ignore"):
        big = np.asarray(my_precond_step(w, X, y, 0.4, P), dtype=float)
    if not np.all(np.isfinite(big)):
        raise AssertionError("not finite at ||w|| ~ 1e3: shift the softmax logits -m by their maximum")
    return compare("preconditioned step at ||w|| ~ 1e3", big, preconditioned_ngd_step(w, X, y, 0.4, P))


@checker("precond weights")
def check_precond_weights(my_precond_weights) -> bool:
    """``my_precond_weights(d, eta, P)`` -> (W, V) whose layer performs one preconditioned NGD step on the query."""
    X, y, w, P = _problem(2)
    got = attempt(my_precond_weights, 3, 0.4, P)
    if not (isinstance(got, tuple) and len(got) == 2):
        raise AssertionError("return the pair (W, V)")
    out, _ = attention_forward(embed(X, y, w), got[0], got[1], 7)
    return compare("query column after your layer", read_weights(out), preconditioned_ngd_step(w, X, y, 0.4, P))


@checker("xor accuracy")
def check_xor_accuracy(my_xor_accuracy) -> bool:
    """Expected accuracy of sign<w, x> on y = sign(x1 x2), x ~ N(0, I): exactly 1/2 for any w (even labels, odd classifier)."""
    got = attempt(my_xor_accuracy)
    if abs(float(got) - 0.5) > 1e-9:
        raise AssertionError(f"{got} is not it: compare the label and the prediction at x and at -x")


@checker("lift")
def check_lift(my_lift) -> bool:
    """``my_lift(X)`` must make y = sign(|x|^2 - 1.4) linear through the origin: looped NGD reaches > 0.9 held-out accuracy."""
    rng = np.random.default_rng(3)
    B, n = 16, 40
    X, X_new = rng.standard_normal((B, n, 2)), rng.standard_normal((B, 500, 2))
    label = lambda P: np.where(np.sum(P * P, axis=-1) >= 1.4, 1.0, -1.0)  # noqa: E731
    F = attempt(my_lift, X)
    F, F_new = np.asarray(F, dtype=float), np.asarray(my_lift(X_new), dtype=float)
    if F.ndim != 3 or F.shape[:2] != (B, n):
        raise AssertionError(f"my_lift(X) has shape {F.shape}; expected (B, n, k) = ({B}, {n}, k)")
    k = F.shape[-1]
    W, V = ngd_weights(k, 0.25)
    w = read_weights(looped_forward(embed(F, label(X), np.zeros((B, k))), W, V, n, 200, query_only=True))
    acc = float(accuracy(w, F_new, label(X_new)).mean())
    if acc <= 0.9:
        raise AssertionError(f"held-out accuracy {acc:.3f} <= 0.9: the label must be sign of a linear function of your features "
                             "with no bias term (hint: a constant feature can play the bias)")
    return f"held-out accuracy {acc:.3f}"
