"""Chapter 08 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

from ngdformer.exercises import ch08
from ngdformer.training import block, block_scales, from_blocks
from checker_contract import assert_checker_contract


def _project(W, V):
    d = W.shape[0] // 2
    c1, c2 = block_scales(W, V)
    return from_blocks((-c1 * np.eye(d), np.zeros((d, d)), c2 * np.eye(d)), d)


def _project_in_place(W, V):
    Wp, Vp = _project(W, V)
    W[...], V[...] = Wp, Vp
    return W, V


CASES = [
    (ch08.check_block_scales, block_scales, lambda W, V: (np.trace(block(W, "12")) / 3, np.trace(block(V, "21")))),
    (ch08.check_end_grad, lambda w, ws: (w - ws) / w.shape[0], lambda w, ws: ws - w),
    (ch08.check_project, _project, lambda W, V: from_blocks((block(W, "12"), block(V, "11"), block(V, "21")), 3)),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_checkers_give_hints():
    with pytest.raises(AssertionError, match="sign"):
        ch08.check_block_scales(lambda W, V: (-block_scales(W, V)[0], block_scales(W, V)[1]))
    with pytest.raises(AssertionError, match="1/B"):
        ch08.check_end_grad(lambda w, ws: w - ws)
    with pytest.raises(AssertionError, match="modified"):
        ch08.check_project(_project_in_place)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_block_scales': 'import numpy as np\nimport ngdformer as nf\ndef my_block_scales(W, V):\n    return nf.block_scales(W, V)\n',
    'my_end_grad': 'import numpy as np\nimport ngdformer as nf\ndef my_end_grad(w_L, w_star):\n    return (w_L - w_star) / w_L.shape[0]\n',
    'my_project': 'import numpy as np\nimport ngdformer as nf\ndef my_project(W, V):\n    from ngdformer.training import from_blocks\n    d = W.shape[0] // 2\n    c1, c2 = nf.block_scales(W, V)\n    return from_blocks((-c1 * np.eye(d), np.zeros((d, d)), c2 * np.eye(d)), d)\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch08, "check_" + name[3:])
    assert check(namespace[name]) is True
