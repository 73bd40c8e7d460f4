"""Checkers for chapter 01, the logistic loss in context (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..losses import logistic_loss_grad
from ..solvers import max_margin
from ..tasks import sample_tasks
from . import attempt, checker, compare


def _task(seed: int = 0, B: int = 3, n: int = 6, d: int = 3):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d, margin=0.1)
    return X, y, rng.standard_normal((B, d))


@checker("logistic loss")
def check_logistic_loss(my_logistic_loss) -> bool:
    r"""``my_logistic_loss(m)``: margins (..., n) -> :math:`\frac1n\sum_i\log(1+e^{-m_i})`, shape (...), finite at |m| = 1000."""
    m = np.array([[0.3, -1.2, 2.5, 0.0], [5.0, -0.1, 1.0, 3.0]])
    got = attempt(my_logistic_loss, m)
    compare("logistic loss", got, np.mean(np.logaddexp(0.0, -m), axis=-1))
    extreme = np.array([-1000.0, 1000.0, -800.0, 40.0])
    with np.errstate(all="ignore"):
        got_big = np.asarray(my_logistic_loss(extreme), dtype=float)
    if not np.all(np.isfinite(got_big)):
        raise AssertionError("the loss overflows at m = -1000: use np.logaddexp(0, -m) instead of log(1 + exp(-m))")
    return compare("logistic loss at margins of +-1000", got_big, np.mean(np.logaddexp(0.0, -extreme)), rtol=1e-12)


@checker("logistic grad")
def check_logistic_grad(my_logistic_grad) -> bool:
    r"""``my_logistic_grad(w, X, y)`` -> :math:`-\frac1n\sum_i\sigma(-m_i)y_ix_i`, shape (B, d), also at margins of +-500."""
    X, y, w = _task()
    got = attempt(my_logistic_grad, w, X, y)
    compare("logistic gradient", got, logistic_loss_grad(w, X, y))
    big = 500.0 * w / np.linalg.norm(w, axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        got_big = np.asarray(my_logistic_grad(big, X, y), dtype=float)
    if not np.all(np.isfinite(got_big)):
        raise AssertionError("the gradient is not finite at margins of +-500: compute sigma(-m) without exp overflow")
    return compare("logistic gradient at large margins", got_big, logistic_loss_grad(big, X, y))


@checker("norm slope")
def check_norm_slope(my_norm_slope) -> bool:
    r"""``my_norm_slope(X, y)`` -> (B,): the limit slope of :math:`\|w_t\|` against :math:`\log t`, i.e. :math:`\|w_{mm}\|`."""
    X, y, _ = _task(seed=2, B=4, n=8, d=3)
    got = attempt(my_norm_slope, X, y)
    expected = np.linalg.norm(max_margin(X, y), axis=-1)
    try:
        return compare("slope of ||w_t|| against log t", got, expected, rtol=1e-6)
    except AssertionError as exc:
        raise AssertionError(f"{exc}. Hint: w_t = w_mm log t + (bounded), so the slope is a norm") from None
