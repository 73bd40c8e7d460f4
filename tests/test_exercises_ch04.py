"""Chapter 04 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch04
from checker_contract import assert_checker_contract


def _sink_ref(m):
    a = np.concatenate([[0.0], -m])
    e = np.exp(a - a.max())
    return (e / e.sum())[1:]


def _context_bottom_ref(X, y, eta):
    W, V = nf.ngd_weights(X.shape[-1], eta)
    out, _ = nf.attention_forward(nf.embed(X, y), W, V, X.shape[0])
    return out[X.shape[-1]:, :-1]


CASES = [
    (ch04.check_embed, nf.embed, lambda X, y, w0: nf.embed(X, -y, w0)),
    (ch04.check_ngd_weights, nf.ngd_weights, lambda d, eta: (nf.ngd_weights(d, eta)[0], nf.ngd_weights(d, 1.0)[1])),
    (ch04.check_sink_weights, _sink_ref, lambda m: np.exp(-m) / np.exp(-m).sum()),
    (ch04.check_context_bottom, _context_bottom_ref, lambda X, y, eta: _context_bottom_ref(X, y, 2 * eta)),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_sink_checker_catches_overflow():
    naive = lambda m: np.exp(-m) / (1 + np.exp(-m).sum())  # right formula, overflows at m = -1000  # noqa: E731
    with pytest.raises(AssertionError, match="overflow"):
        ch04.check_sink_weights(naive)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_embed': 'import numpy as np\nimport ngdformer as nf\ndef my_embed(X, y, w0):\n    return nf.embed(X, y, w0)\n',
    'my_ngd_weights': 'import numpy as np\nimport ngdformer as nf\ndef my_ngd_weights(d, eta):\n    return nf.ngd_weights(d, eta)\n',
    'my_sink_weights': 'import numpy as np\nimport ngdformer as nf\ndef my_sink_weights(m):\n    a = np.concatenate([[0.0], -np.asarray(m)])\n    e = np.exp(a - a.max())\n    return (e / e.sum())[1:]\n',
    'my_context_bottom': 'import numpy as np\nimport ngdformer as nf\ndef my_context_bottom(X, y, eta):\n    W, V = nf.ngd_weights(X.shape[-1], eta)\n    out, _ = nf.attention_forward(nf.embed(X, y), W, V, X.shape[0])\n    return out[X.shape[-1]:, :-1]\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch04, "check_" + name[3:])
    assert check(namespace[name]) is True
