"""Chapter 05 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch05
from checker_contract import assert_checker_contract


CASES = [
    (ch05.check_stack_layers, lambda d, etas: [nf.ngd_weights(d, e) for e in etas],
     lambda d, etas: [nf.ngd_weights(d, e) for e in reversed(etas)]),
    (ch05.check_separator_segment, lambda w, r: nf.separator_segment(w, r),
     lambda w, r: r * np.stack([w, -w]) / np.linalg.norm(w)),
    (ch05.check_norm_bound, lambda X, eta, L: eta * L * np.linalg.norm(X, axis=-1).max(),
     lambda X, eta, L: eta * L * np.linalg.norm(X, axis=-1).mean()),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_checkers_reject_wrong_shapes_and_loose_bounds():
    with pytest.raises(AssertionError, match="expected 3 layers"):
        ch05.check_stack_layers(lambda d, etas: [nf.ngd_weights(d, 1.0)])
    with pytest.raises(AssertionError, match="norm bound"):
        ch05.check_norm_bound(lambda X, eta, L: 2 * eta * L * np.linalg.norm(X, axis=-1).max())
    with pytest.raises(AssertionError, match="not a bound"):
        ch05.check_norm_bound(lambda X, eta, L: 1e-3)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_stack_layers': 'import numpy as np\nimport ngdformer as nf\ndef my_stack_layers(d, etas):\n    return [nf.ngd_weights(d, e) for e in etas]\n',
    'my_separator_segment': 'import numpy as np\nimport ngdformer as nf\ndef my_separator_segment(w, radius):\n    return nf.separator_segment(w, radius)\n',
    'my_norm_bound': 'import numpy as np\nimport ngdformer as nf\ndef my_norm_bound(X, eta, L):\n    return eta * L * np.linalg.norm(X, axis=-1).max()\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch05, "check_" + name[3:])
    assert check(namespace[name]) is True
