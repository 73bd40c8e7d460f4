"""Chapter 03 checkers: True on the reference, each named mistake recognised, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch03
from checker_contract import assert_checker_contract


def _T(a):
    return np.swapaxes(a, -1, -2)


# ---------------------------------------------------------------- forward, written as a student would
def _forward_right(Z, W, V, n):
    """The package's layer, with S recomputed from its cache: the answer key."""
    out, cache = nf.attention_forward(Z, W, V, n)
    return out, {"T": cache.T, "S": _T(Z[..., :n]) @ cache.T, "A": cache.A, "U": cache.U}


def _forward(Z, W, V, n, mistake=None):
    """An independent student-style forward; ``mistake`` names one usual error to make."""
    K = Z[..., :Z.shape[-1] if mistake == "all keys" else (Z.shape[-1] - 1 if mistake == "n = N - 1" else n)]
    T = (W.T if mistake == "W transposed" else W) @ Z
    S = _T(K) @ T
    axis = -1 if mistake == "softmax over queries" else -2
    e = np.exp(S if mistake == "no max shift" else S - S.max(axis=axis, keepdims=True))
    A = e / e.sum(axis=axis, keepdims=True)
    U = K @ A
    if mistake == "mutates Z":
        out = Z
        out += V @ U
    elif mistake == "no residual":
        out = V @ U
    else:
        out = Z + V @ U
    if mistake == "tokens as rows":
        T, U, out = _T(T), _T(U), _T(out)
    if mistake == "S transposed":
        S = _T(S)
    return out, {"T": T, "S": S, "A": A, "U": U}


def _forward_mistake(mistake):
    def fn(Z, W, V, n):
        with np.errstate(all="ignore"):
            return _forward(Z, W, V, n, mistake)
    return fn


def _batched_only(Z, W, V, n):
    """Right for a batch (B, D, N), but written with three fixed axes: fails on a single task."""
    K = Z[:, :, :n]
    A = nf.softmax(K.transpose(0, 2, 1) @ W @ Z, axis=1)
    return Z + V @ K @ A, {"T": W @ Z, "S": K.transpose(0, 2, 1) @ W @ Z, "A": A, "U": K @ A}


FORWARD_MISTAKES = {
    r"softmax runs over the queries": _forward_mistake("softmax over queries"),
    r"residual is missing": _forward_mistake("no residual"),
    r"tokens are columns: expected shape": _forward_mistake("tokens as rows"),
    r"W is applied transposed": _forward_mistake("W transposed"),
    r"one row per key and one column per query": _forward_mistake("S transposed"),
    r"keys are the first n_context": _forward_mistake("all keys"),
    r"S on .*rows, but S has one row per key": _forward_mistake("n = N - 1"),
    r"changed its input Z in place": _forward_mistake("mutates Z"),
    r"NaN or inf \(an overflow\? shift by the maximum": _forward_mistake("no max shift"),
    r"return the pair \(out, cache\)": lambda Z, W, V, n: _forward_right(Z, W, V, n)[0],
    r"raised IndexError.*index axes from the end": _batched_only,
}


def test_forward_checker():
    assert_checker_contract(ch03.check_attention_forward, _forward_right, mistakes=FORWARD_MISTAKES)


def test_forward_reference_is_independent():
    """The student-style forward without a mistake equals the package's (so the mistakes are the only change)."""
    rng = np.random.default_rng(0)
    Z, (W, V) = rng.standard_normal((3, 6, 5)), rng.standard_normal((2, 6, 6))
    out, cache = _forward(Z, W, V, 3)
    ref_out, ref_cache = _forward_right(Z, W, V, 3)
    assert np.allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    for k in "TSAU":
        assert np.allclose(cache[k], ref_cache[k], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- backward, written as a student would
def _backward(dout, cache, mistake=None):
    """An independent student-style backward of the full layer; ``mistake`` names one usual error."""
    Z, W, V, n, _, T, A, U = cache
    K, Q, G = Z[..., :n], Z, dout
    D = Z.shape[-2]
    dV = G @ _T(U)
    dU = V.T @ G
    dK = dU @ _T(A)
    dA = _T(K) @ dU
    if mistake == "softmax no subtraction":
        dS = A * dA
    else:
        dS = A * (dA - np.sum(A * dA, axis=-1 if mistake == "softmax sum over queries" else -2, keepdims=True))
    dK_keys = T @ _T(dS)
    if mistake == "values only in dK":
        pass
    elif mistake == "keys only in dK":
        dK = dK_keys
    else:
        dK = dK + dK_keys
    dT = K @ dS
    dW = dT @ _T(Q)
    dQ = W.T @ dT
    if mistake == "mutates dout":
        dZ = dout
        dZ += dQ
    elif mistake == "no residual":
        dZ = dQ.copy()
    elif mistake == "no query part":
        dZ = dout.copy()
    else:
        dZ = dout + dQ
    dZ[..., :n] += dK
    if mistake != "per-task weights":
        dW, dV = dW.reshape(-1, D, D).sum(axis=0), dV.reshape(-1, D, D).sum(axis=0)
    if mistake == "mean over batch":
        B = int(np.prod(Z.shape[:-2]))
        dW, dV = dW / B, dV / B
    if mistake == "dW transposed":
        dW = dW.T
    if mistake == "dV transposed":
        dV = dV.T
    if mistake == "tokens as rows":
        dZ = _T(dZ)
    if mistake == "sign":
        dW = -dW
    if mistake == "perturbed dW":
        dW = dW + 0.01  # a small error, no usual one
    return dZ, dW, dV


def _backward_mistake(mistake):
    return lambda dout, cache: _backward(dout, cache, mistake)


BACKWARD_MISTAKES = {
    r"dZ on .*residual path is missing": _backward_mistake("no residual"),
    r"two contributions to dK: K is both the keys and the values \(the keys' part": _backward_mistake(
        "values only in dK"),
    r"two contributions to dK: K is both the keys and the values \(the values' part": _backward_mistake(
        "keys only in dK"),
    r"dW on .*dW is transposed": _backward_mistake("dW transposed"),
    r"dV on .*dV is transposed": _backward_mistake("dV transposed"),
    r"one gradient per task.*shared by every task": _backward_mistake("per-task weights"),
    r"averaged over the batch": _backward_mistake("mean over batch"),
    r"softmax backward is missing its normalisation term": _backward_mistake("softmax no subtraction"),
    r"softmax backward sums over the queries": _backward_mistake("softmax sum over queries"),
    r"dZ on .*queries' contribution is missing": _backward_mistake("no query part"),
    r"tokens are columns: expected shape": _backward_mistake("tokens as rows"),
    r"changed dout in place": _backward_mistake("mutates dout"),
    r"dW on .*sign is flipped": _backward_mistake("sign"),
    r"dW on .*largest difference.*finite-difference check fails too": _backward_mistake("perturbed dW"),
    r"return the tuple \(dZ, dW, dV\)": lambda dout, cache: list(nf.attention_backward(dout, cache)),
}


def test_backward_checker():
    assert_checker_contract(ch03.check_attention_backward, nf.attention_backward, mistakes=BACKWARD_MISTAKES)


def test_backward_reference_is_independent():
    rng = np.random.default_rng(1)
    Z, (W, V) = rng.standard_normal((4, 6, 5)), rng.standard_normal((2, 6, 6))
    dout = rng.standard_normal(Z.shape)
    cache = nf.attention_forward(Z, W, V, 3)[1]
    for mine, ref in zip(_backward(dout, cache), nf.attention_backward(dout, cache)):
        assert np.allclose(mine, ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- one query column
def _query_backward(q, K, W, V, g, mistake=None):
    """The one-query backward, written independently of attention_backward."""
    s = K.T @ W @ q
    p = np.exp(s - s.max())
    p /= p.sum()
    dV = np.outer(g, K @ p)
    dp = K.T @ V.T @ g
    ds = p * dp if mistake == "softmax no subtraction" else p * (dp - p @ dp)
    dW = K @ np.outer(ds, q)
    dq = (0 if mistake == "no residual" else g) + W.T @ K @ ds
    dK = (0 if mistake == "keys only in dK" else np.outer(V.T @ g, p)) + np.outer(W @ q, ds)
    return dq, dK, (dW.T if mistake == "dW transposed" else dW), dV


QUERY_MISTAKES = {
    r"dq .*residual path is missing": lambda *a: _query_backward(*a, mistake="no residual"),
    r"dK .*two contributions to dK.*values' part": lambda *a: _query_backward(*a, mistake="keys only in dK"),
    r"dW .*transposed": lambda *a: _query_backward(*a, mistake="dW transposed"),
    r"softmax backward is missing its normalisation term": lambda *a: _query_backward(
        *a, mistake="softmax no subtraction"),
    r"return the tuple \(dq, dK, dW, dV\)": lambda *a: list(_query_backward(*a)),
}


def test_query_checker():
    assert_checker_contract(ch03.check_query_backward, _query_backward, mistakes=QUERY_MISTAKES)


def test_query_reference_matches_finite_differences():
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
    'my_attention_forward': (
        'import numpy as np\nimport ngdformer as nf\n'
        'def my_attention_forward(Z, W, V, n_context):\n'
        '    out, cache = nf.attention_forward(Z, W, V, n_context)\n'
        '    S = np.swapaxes(Z[..., :n_context], -1, -2) @ cache.T\n'
        '    return out, {"T": cache.T, "S": S, "A": cache.A, "U": cache.U}\n'),
    'my_attention_backward': (
        'import numpy as np\nimport ngdformer as nf\n'
        'def my_attention_backward(dout, cache):\n'
        '    return nf.attention_backward(dout, cache)\n'),
    'my_query_backward': (
        'import numpy as np\nimport ngdformer as nf\n'
        'def my_query_backward(q, K, W, V, g):\n'
        '    n = K.shape[1]\n'
        '    Z = np.concatenate([K, q[:, None]], axis=1)\n'
        '    _, cache = nf.attention_forward(Z, W, V, n, query_only=True)\n'
        '    dout = np.zeros_like(Z)\n'
        '    dout[:, -1] = g\n'
        '    dZ, dW, dV = nf.attention_backward(dout, cache)\n'
        '    return dZ[:, -1], dZ[:, :n], dW, dV\n'),
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch03, "check_" + name[3:])
    assert check(namespace[name]) is True
