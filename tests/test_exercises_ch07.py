"""Chapter 07 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch07
from checker_contract import assert_checker_contract


def _fraction(w, X, y, w_mm):
    return nf.normalized_margin(w, X, y) / nf.normalized_margin(w_mm, X, y)


CASES = [
    (ch07.check_normalized_difference, nf.normalized_difference, lambda u, v: np.linalg.norm(u - v, axis=-1)),
    (ch07.check_margin_fraction, _fraction, lambda w, X, y, w_mm: nf.normalized_margin(w, X, y)),
    (ch07.check_first_affected_loop, lambda: 2, lambda: 1),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_checkers_give_hints():
    with pytest.raises(AssertionError, match="unit length"):
        ch07.check_normalized_difference(lambda u, v: np.linalg.norm(u - v, axis=-1))
    with pytest.raises(AssertionError, match="length of its weight"):
        ch07.check_margin_fraction(lambda w, X, y, w_mm: np.min(y * np.einsum("bnd,bd->bn", X, w), -1)
                                   / np.min(y * np.einsum("bnd,bd->bn", X, w_mm), -1))
    with pytest.raises(AssertionError, match="bottom"):
        ch07.check_first_affected_loop(lambda: 3)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_normalized_difference': 'import numpy as np\nimport ngdformer as nf\ndef my_normalized_difference(u, v):\n    return nf.normalized_difference(u, v)\n',
    'my_margin_fraction': 'import numpy as np\nimport ngdformer as nf\ndef my_margin_fraction(w, X, y, w_mm):\n    return nf.normalized_margin(w, X, y) / nf.normalized_margin(w_mm, X, y)\n',
    'my_first_affected_loop': 'import numpy as np\nimport ngdformer as nf\ndef my_first_affected_loop():\n    return 2\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch07, "check_" + name[3:])
    assert check(namespace[name]) is True
