"""Chapter 01 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch01
from checker_contract import assert_checker_contract


def _loss_ref(m):
    return np.mean(np.logaddexp(0.0, -np.asarray(m)), axis=-1)


def _slope_ref(X, y):
    return np.linalg.norm(nf.max_margin(X, y), axis=-1)


CASES = [
    (ch01.check_logistic_loss, _loss_ref, lambda m: np.mean(np.logaddexp(0.0, m), axis=-1)),
    (ch01.check_logistic_grad, nf.logistic_loss_grad, nf.exp_loss_grad),
    (ch01.check_norm_slope, _slope_ref, lambda X, y: 1.0 / _slope_ref(X, y)),  # the normalized margin, not the slope
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_loss_checker_catches_overflow():
    naive = lambda m: np.mean(np.log(1 + np.exp(-m)), axis=-1)  # right formula, overflows at m = -1000  # noqa: E731
    with pytest.raises(AssertionError, match="overflow"):
        ch01.check_logistic_loss(naive)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_logistic_loss': 'import numpy as np\nimport ngdformer as nf\ndef my_logistic_loss(m):\n    return np.mean(np.logaddexp(0.0, -np.asarray(m)), axis=-1)\n',
    'my_logistic_grad': 'import numpy as np\nimport ngdformer as nf\ndef my_logistic_grad(w, X, y):\n    return nf.logistic_loss_grad(w, X, y)\n',
    'my_norm_slope': 'import numpy as np\nimport ngdformer as nf\ndef my_norm_slope(X, y):\n    return np.linalg.norm(nf.max_margin(X, y), axis=-1)\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch01, "check_" + name[3:])
    assert check(namespace[name]) is True
