"""Chapter 01 checkers: the package's answer passes, each usual mistake is rejected by name, the stub is "not attempted yet"."""

import contextlib
import io

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch01
from checker_contract import assert_checker_contract, stub


def _m(w, X, y):
    return y * np.einsum("...nd,...d->...n", X, w)  # (..., n)


def _sigma_neg(m):  # sigma(-m), stable
    return np.exp(-np.logaddexp(0.0, m))


def _grad(c, X, y):  # -(1/n) sum_i c_i y_i x_i
    return -np.einsum("...n,...nd->...d", c * y, X) / X.shape[-2]


# Wrong losses a student might write: each works on ordinary inputs except for its mistake.
LOSS_MISTAKES = {
    r"overflow": lambda w, X, y: np.mean(np.log(1 + np.exp(-_m(w, X, y))), axis=-1),
    r"NumPy warned .*both branches": lambda w, X, y: np.mean(
        np.where(_m(w, X, y) > 0, np.log1p(np.exp(-_m(w, X, y))), -_m(w, X, y) + np.log1p(np.exp(_m(w, X, y)))),
        axis=-1),
    r"labels y are missing": lambda w, X, y: np.mean(np.logaddexp(0.0, -(X @ w[..., None])[..., 0]), axis=-1),
    r"sign of the margin is flipped": lambda w, X, y: np.mean(np.logaddexp(0.0, _m(w, X, y)), axis=-1),
    r"sum over the context": lambda w, X, y: np.sum(np.logaddexp(0.0, -_m(w, X, y)), axis=-1),
    r"exponential loss": lambda w, X, y: np.mean(np.exp(-_m(w, X, y)), axis=-1),
    r"axis 0, a batch axis": lambda w, X, y: np.mean(np.logaddexp(0.0, -_m(w, X, y)), axis=0),
    r"leading batch axes": lambda w, X, y: np.mean(np.logaddexp(0.0, -_m(w, X, y)), axis=1),  # fails on one task
    r"one loss for all the tasks": lambda w, X, y: np.mean(np.logaddexp(0.0, -_m(w, X, y))),
}


def _loss_in_place(w, X, y):
    X *= y[..., None]  # signed examples, written into the caller's X
    return np.mean(np.logaddexp(0.0, -np.einsum("...nd,...d->...n", X, w)), axis=-1)


LOSS_MISTAKES[r"changed its input X in place"] = _loss_in_place


def _grad_exp_form(w, X, y):  # sigma(-m) as e^{-m} / (1 + e^{-m}): inf / inf at m = -1e4
    e = np.exp(-_m(w, X, y))
    return _grad(e / (1 + e), X, y)


def _grad_transposed(w, X, y):
    g = nf.logistic_loss_grad(w, X, y)
    return np.swapaxes(g, -1, -2) if g.ndim >= 2 else g


def _grad_in_place(w, X, y):
    c = _sigma_neg(_m(w, X, y))
    X *= (c * y)[..., None]
    return -X.mean(axis=-2)


GRAD_MISTAKES = {
    r"sign is flipped": lambda w, X, y: -nf.logistic_loss_grad(w, X, y),
    r"labels y are missing from the sum": lambda w, X, y: _grad(_sigma_neg(_m(w, X, y)) * y, X, y),
    r"labels y are missing from the margins": lambda w, X, y: _grad(_sigma_neg(_m(w, X, y) * y), X, y),
    r"sum over the context": lambda w, X, y: X.shape[-2] * nf.logistic_loss_grad(w, X, y),
    r"weights are reversed": lambda w, X, y: _grad(_sigma_neg(-_m(w, X, y)), X, y),
    r"exponential loss's gradient": nf.exp_loss_grad,
    r"transposed": _grad_transposed,
    r"number of tasks": lambda w, X, y: nf.logistic_loss_grad(w, X, y) / max(1, int(np.prod(X.shape[:-2]))),
    r"input dimension d": lambda w, X, y: np.mean(-(_sigma_neg(_m(w, X, y)) * y)[..., None] * X, axis=1),
    r"axis 0, a batch axis": lambda w, X, y: np.mean(-(_sigma_neg(_m(w, X, y)) * y)[..., None] * X, axis=0),
    r"overflow": _grad_exp_form,
    r"NumPy warned": lambda w, X, y: _grad(1.0 / (1.0 + np.exp(_m(w, X, y))), X, y),
    r"changed its input X in place": _grad_in_place,
}


def test_loss_checker():
    assert_checker_contract(ch01.check_logistic_loss, nf.logistic_loss, mistakes=LOSS_MISTAKES)


def test_grad_checker():
    assert_checker_contract(ch01.check_logistic_loss_grad, nf.logistic_loss_grad, mistakes=GRAD_MISTAKES)


def _printed(check, *args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = check(*args)
    return result, out.getvalue()


def test_grad_checker_uses_the_students_loss():
    result, printed = _printed(ch01.check_logistic_loss_grad, nf.logistic_loss_grad, nf.logistic_loss)
    assert result is True and "your my_logistic_loss" in printed
    result, printed = _printed(ch01.check_logistic_loss_grad, nf.logistic_loss_grad, stub)  # loss not done yet
    assert result is True and "nf.logistic_loss" in printed


def test_grad_checker_blames_a_wrong_loss():
    wrong_loss = LOSS_MISTAKES[r"sum over the context"]
    with pytest.raises(AssertionError, match="central differences of your my_logistic_loss.*check_logistic_loss"):
        ch01.check_logistic_loss_grad(nf.logistic_loss_grad, wrong_loss)


def test_messages_do_not_leak_the_answer():
    """No named mistake's message quotes the function that solves the exercise."""
    for check, mistakes in ((ch01.check_logistic_loss, LOSS_MISTAKES), (ch01.check_logistic_loss_grad, GRAD_MISTAKES)):
        for fn in mistakes.values():
            with contextlib.redirect_stdout(io.StringIO()), pytest.raises(AssertionError) as info:
                check(fn)
            assert "logaddexp" not in str(info.value) and "sigmoid" not in str(info.value)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_logistic_loss': 'import ngdformer as nf\n\ndef my_logistic_loss(w, X, y):\n    return nf.logistic_loss(w, X, y)\n',
    'my_logistic_loss_grad': ('import ngdformer as nf\n\ndef my_logistic_loss_grad(w, X, y):\n'
                              '    return nf.logistic_loss_grad(w, X, y)\n'),
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch01, "check_" + name[3:])
    assert _printed(check, namespace[name])[0] is True
