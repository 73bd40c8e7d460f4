"""Chapter 03 checkers: True on the reference, AssertionError on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch03
from checker_contract import assert_checker_contract


def _query_backward(q, K, W, V, g, transpose_dW=False):
    """The one-query backward, written independently of attention_backward."""
    s = K.T @ W @ q
    p = np.exp(s - s.max())
    p /= p.sum()
    dV = np.outer(g, K @ p)
    dp = K.T @ V.T @ g
    ds = p * (dp - p @ dp)
    dW = K @ np.outer(ds, q)
    dq = g + W.T @ K @ ds
    dK = np.outer(V.T @ g, p) + np.outer(W @ q, ds)
    return dq, dK, (dW.T if transpose_dW else dW), dV


CASES = [
    (ch03.check_softmax_backward, lambda da, a: a * (da - a @ da), lambda da, a: a * da),
    (ch03.check_softmax_jacobian, lambda a: np.diag(a) - np.outer(a, a), lambda a: np.diag(a)),
    (ch03.check_query_backward, _query_backward, lambda *args: _query_backward(*args, transpose_dW=True)),
]


@pytest.mark.parametrize("check, right, wrong", CASES)
def test_checker(check, right, wrong):
    assert_checker_contract(check, right, wrong)


def test_query_backward_needs_a_tuple():
    with pytest.raises(AssertionError, match="tuple"):
        ch03.check_query_backward(lambda *args: list(_query_backward(*args)))


def test_reference_matches_finite_differences():
    """The independent reference above is itself right (so the checker's True means something)."""
    rng = np.random.default_rng(2)
    D, n = 4, 3
    K, q, g = rng.standard_normal((D, n)), rng.standard_normal(D), rng.standard_normal(D)
    W, V = rng.standard_normal((2, D, D))

    def J(q_, K_, W_, V_):
        s = K_.T @ W_ @ q_
        p = np.exp(s - s.max())
        return g @ (q_ + V_ @ K_ @ (p / p.sum()))

    grads = _query_backward(q, K, W, V, g)
    args = [q, K, W, V]
    for k, grad in enumerate(grads):
        num = nf.numeric_jacobian(lambda x: J(*(args[:k] + [x] + args[k + 1:])), args[k])
        nf.assert_gradients_close(num, grad, f"argument {k}")


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_softmax_backward': 'import numpy as np\nimport ngdformer as nf\ndef my_softmax_backward(da, a):\n    return nf.softmax_backward(da, a)\n',
    'my_softmax_jacobian': 'import numpy as np\nimport ngdformer as nf\ndef my_softmax_jacobian(a):\n    return np.diag(a) - np.outer(a, a)\n',
    'my_query_backward': 'import numpy as np\nimport ngdformer as nf\ndef my_query_backward(q, K, W, V, g):\n    n = K.shape[1]\n    Z = np.concatenate([K, q[:, None]], axis=1)\n    _, cache = nf.attention_forward(Z, W, V, n, query_only=True)\n    dout = np.zeros_like(Z)\n    dout[:, -1] = g\n    dZ, dW, dV = nf.attention_backward(dout, cache)\n    return dZ[:, -1], dZ[:, :n], dW, dV\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch03, "check_" + name[3:])
    assert check(namespace[name]) is True
