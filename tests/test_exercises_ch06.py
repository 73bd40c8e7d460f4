"""Chapter 06 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import pytest

from ngdformer.exercises import ch06
from ngdformer.training import from_blocks, one_step_loss, to_blocks
from checker_contract import assert_checker_contract


def _gd_step(W, V, Z, target, lr):
    _, dW, dV = one_step_loss(W, V, Z, target)
    return W - lr * dW, V - lr * dV


def _gd_step_in_place(W, V, Z, target, lr):
    _, dW, dV = one_step_loss(W, V, Z, target)
    W -= lr * dW
    V -= lr * dV
    return W, V


def _keep_excited_in_place(W, V):
    d = W.shape[0] // 2
    W[:, :d] = 0
    W[d:, :] = 0
    V[:, d:] = 0
    return W, V


CASES = [
    (ch06.check_unexcited_blocks, lambda: {"W11", "W21", "W22", "V12", "V22"},
     lambda: {"W11", "W21", "W22", "V12", "V22", "V11"}),
    (ch06.check_gd_step, _gd_step, lambda W, V, Z, t, lr: _gd_step(W, V, Z, t, 2 * lr)),
    (ch06.check_keep_excited, lambda W, V: from_blocks(to_blocks(W, V), W.shape[0] // 2),
     lambda W, V: (W.copy(), V.copy())),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_checkers_give_hints():
    with pytest.raises(AssertionError, match="unknown block"):
        ch06.check_unexcited_blocks(lambda: {"W13"})
    with pytest.raises(AssertionError, match="missing"):
        ch06.check_unexcited_blocks(lambda: {"W11"})
    with pytest.raises(AssertionError, match="uphill"):
        ch06.check_gd_step(lambda W, V, Z, t, lr: _gd_step(W, V, Z, t, -lr))
    with pytest.raises(AssertionError, match="modified"):
        ch06.check_gd_step(_gd_step_in_place)
    with pytest.raises(AssertionError, match="modified"):
        ch06.check_keep_excited(_keep_excited_in_place)
    assert ch06.check_unexcited_blocks(lambda: ["w11", "w21", "w22", "v12", "v22"]) is True


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_unexcited_blocks': "import numpy as np\nimport ngdformer as nf\ndef my_unexcited_blocks():\n    return {'W11', 'W21', 'W22', 'V12', 'V22'}\n",
    'my_gd_step': 'import numpy as np\nimport ngdformer as nf\ndef my_gd_step(W, V, Z, target, lr):\n    _, dW, dV = nf.one_step_loss(W, V, Z, target)\n    return W - lr * dW, V - lr * dV\n',
    'my_keep_excited': 'import numpy as np\nimport ngdformer as nf\ndef my_keep_excited(W, V):\n    from ngdformer.training import from_blocks, to_blocks\n    return from_blocks(to_blocks(W, V), W.shape[0] // 2)\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch06, "check_" + name[3:])
    assert check(namespace[name]) is True
