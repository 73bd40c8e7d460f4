"""Chapter 02 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch02
from checker_contract import assert_checker_contract


def _coef_ref(m):
    return 1.0 / (1.0 + np.exp(m)) / np.sum(np.logaddexp(0.0, -m))


def _softmax(m):
    e = np.exp(-m - np.max(-m))
    return e / e.sum()


CASES = [
    (ch02.check_ngd_step, nf.ngd_step, lambda w, X, y, eta: nf.ngd_step(w, X, y, eta, loss="logistic")),
    (ch02.check_logistic_coefficients, _coef_ref, _softmax),
    (ch02.check_gamma_from_dual, lambda a: 1 / np.sqrt(a.sum(-1)), lambda a: 1 / a.sum(-1)),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_ngd_step_checker_catches_overflow():
    def naive(w, X, y, eta):  # right formula, overflows at margins of -1000
        e = np.exp(-y * np.einsum("bnd,bd->bn", X, w))
        return w + eta * np.einsum("bn,bnd->bd", e / e.sum(-1, keepdims=True) * y, X)

    with pytest.raises(AssertionError, match="not finite"):
        ch02.check_ngd_step(naive)


def test_softmax_hint():
    with pytest.raises(AssertionError, match="sum to 1"):
        ch02.check_logistic_coefficients(_softmax)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_ngd_step': 'import numpy as np\nimport ngdformer as nf\ndef my_ngd_step(w, X, y, eta):\n    return nf.ngd_step(w, X, y, eta)\n',
    'my_logistic_coefficients': "import numpy as np\nimport ngdformer as nf\ndef my_logistic_coefficients(m):\n    m = np.asarray(m, dtype=float)\n    return nf.ngd_coefficients(m, np.eye(m.size), np.ones(m.size), loss='logistic')\n",
    'my_gamma_from_dual': 'import numpy as np\nimport ngdformer as nf\ndef my_gamma_from_dual(a):\n    return 1 / np.sqrt(np.sum(a, axis=-1))\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch02, "check_" + name[3:])
    assert check(namespace[name]) is True
