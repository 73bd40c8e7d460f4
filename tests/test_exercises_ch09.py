"""Chapter 09 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch09
from checker_contract import assert_checker_contract


def _naive_step(w, X, y, eta, P):  # right formula without the max-shift: overflows at large ||w||
    e = np.exp(-nf.margins(w, X, y))
    return w + eta * np.einsum("bn,bn,bnd->bd", e / e.sum(-1, keepdims=True), y, X) @ P.T


CASES = [
    (ch09.check_precond_step, nf.preconditioned_ngd_step, lambda w, X, y, eta, P: nf.ngd_step(w, X, y, eta)),
    (ch09.check_precond_weights, nf.preconditioned_weights, lambda d, eta, P: nf.ngd_weights(d, eta)),
    (ch09.check_xor_accuracy, lambda: 0.5, lambda: 0.75),
    (ch09.check_lift, lambda X: np.concatenate([X * X, np.ones(X.shape[:-1] + (1,))], axis=-1), lambda X: X),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_precond_step_checker_catches_overflow():
    with pytest.raises(AssertionError, match="not finite"):
        ch09.check_precond_step(_naive_step)


def test_lift_checker_needs_a_constant_feature():
    with pytest.raises(AssertionError, match="bias"):
        ch09.check_lift(lambda X: X * X)  # |x|^2 - 1.4 needs the constant feature


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_precond_step': 'import numpy as np\nimport ngdformer as nf\ndef my_precond_step(w, X, y, eta, P):\n    return nf.preconditioned_ngd_step(w, X, y, eta, P)\n',
    'my_precond_weights': 'import numpy as np\nimport ngdformer as nf\ndef my_precond_weights(d, eta, P):\n    return nf.preconditioned_weights(d, eta, P)\n',
    'my_xor_accuracy': 'import numpy as np\nimport ngdformer as nf\ndef my_xor_accuracy():\n    return 0.5\n',
    'my_lift': 'import numpy as np\nimport ngdformer as nf\ndef my_lift(X):\n    return np.concatenate([X * X, np.ones(X.shape[:-1] + (1,))], axis=-1)\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch09, "check_" + name[3:])
    assert check(namespace[name]) is True
