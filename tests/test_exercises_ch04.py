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
