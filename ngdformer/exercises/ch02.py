"""Checkers for chapter 02, normalized gradient descent (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..losses import ngd_coefficients
from ..solvers import max_margin_dual, ngd_step, normalized_margin
from ..tasks import sample_tasks
from . import attempt, checker, compare


def _task(seed: int = 0, B: int = 3, n: int = 6, d: int = 3):
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, B, n, d, margin=0.1)
    return X, y, rng.standard_normal((B, d))


@checker("ngd step")
def check_ngd_step(my_ngd_step) -> bool:
    r"""``my_ngd_step(w, X, y, eta)`` -> :math:`w + \eta\sum_i \mathrm{softmax}(-m)_i y_i x_i`, (B, d); finite at margins of +-1000."""
    X, y, w = _task()
    got = attempt(my_ngd_step, w, X, y, 0.3)
    compare("NGD step", got, ngd_step(w, X, y, 0.3))
    big = 1e3 * w / np.min(np.abs(np.einsum("bnd,bd->bn", X, w)), axis=-1, keepdims=True)  # every |m_i| >= 1000
    with np.errstate(all="ignore"):
        got_big = np.asarray(my_ngd_step(big, X, y, 0.3), dtype=float)
    if not np.all(np.isfinite(got_big)):
        raise AssertionError("the step is not finite at margins of +-1000: shift -m by its maximum before exponentiating")
    return compare("NGD step at large margins", got_big, ngd_step(big, X, y, 0.3), rtol=1e-12)


@checker("logistic coefficients")
def check_logistic_coefficients(my_logistic_coefficients) -> bool:
    r"""``my_logistic_coefficients(m)``, m of shape (n,) -> :math:`\sigma(-m_i)/\sum_j\log(1+e^{-m_j})`, shape (n,)."""
    m = np.array([0.5, -1.0, 2.0, 0.0, 4.0])
    got = attempt(my_logistic_coefficients, m)
    expected = ngd_coefficients(m, np.eye(5), np.ones(5), loss="logistic")  # margins of w = m against X = I are m
    try:
        return compare("logistic NGD weights", got, expected)
    except AssertionError as exc:
        if np.allclose(np.sum(got), 1.0):
            raise AssertionError(f"{exc}. Your weights sum to 1: the logistic ones do not (that is the softmax)") from None
        raise


@checker("gamma from dual")
def check_gamma_from_dual(my_gamma_from_dual) -> bool:
    r"""``my_gamma_from_dual(a)``, a of shape (B, n) certified dual variables -> :math:`\gamma_{mm} = 1/\sqrt{\sum_i a_i}`, (B,)."""
    X, y, _ = _task(seed=3, B=4, n=10, d=3)
    res = max_margin_dual(X, y)
    got = attempt(my_gamma_from_dual, res.a.copy())
    try:
        return compare("gamma_mm from the dual", got, normalized_margin(res.w, X, y), rtol=1e-8)
    except AssertionError as exc:
        raise AssertionError(f"{exc}. Hint: a zero duality gap means ||w_mm||^2 = sum_i a_i") from None
