"""Chapter 10 checkers: True on the reference, each named mistake recognised, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from checker_contract import assert_checker_contract
from ngdformer.exercises import ch10


def _T(a):
    return np.swapaxes(a, -1, -2)


# ---------------------------------------------------------------- the backward, written as a student would
def _phi_prime(S, activation, mistake=None):
    """phi'(S), written apart from the package."""
    if activation == "linear":
        return np.ones_like(S)
    if activation == "relu":
        return (S > (0.0 if mistake == "relu kink at 0" else -1.0)).astype(float)
    if activation == "sigmoid":
        a = 1.0 / (1.0 + np.exp(-S))
        return a * (1.0 - a)
    return np.exp(S)


def _backward(dout, cache, mistake=None):
    """An independent student-style backward of the elementwise layer; ``mistake`` names one usual error."""
    Z, W, V, n, activation, T, S, A, U = cache
    K, D = Z[..., :n], Z.shape[-2]
    dV = dout @ _T(U)
    dU = V.T @ dout
    dA = _T(K) @ dU
    if mistake == "phi instead of phi'":
        dS = A * dA
    elif mistake == "no phi'":
        dS = dA
    elif mistake == "softmax backward":
        dS = A * (dA - np.sum(A * dA, axis=-2, keepdims=True))
    else:
        dS = _phi_prime(S, activation, mistake) * dA
    dT = K @ dS
    dW = dT @ _T(Z)
    dK = (0 if mistake == "keys only" else dU @ _T(A)) + (0 if mistake == "values only" else T @ _T(dS))
    if mistake == "mutates dout":
        dZ = dout
        dZ += W.T @ dT
    elif mistake == "no residual":
        dZ = W.T @ dT
    elif mistake == "no query part":
        dZ = dout.copy()
    else:
        dZ = dout + W.T @ dT
    dZ[..., :n] += dK
    if mistake != "per-task weights":
        dW, dV = dW.reshape(-1, D, D).sum(axis=0), dV.reshape(-1, D, D).sum(axis=0)
    if mistake == "mean over batch":
        B = int(np.prod(Z.shape[:-2]))
        dW, dV = dW / B, dV / B
    if mistake == "dW transposed":
        dW = dW.T
    if mistake == "perturbed dW":
        dW = dW + 1e-3
    return dZ, dW, dV


def _mistake(name):
    return lambda dout, cache: _backward(dout, cache, name)


BACKWARD_MISTAKES = {
    r"dS uses phi\(S\), the activation itself": _mistake("phi instead of phi'"),
    r"missing the factor phi'\(S\)": _mistake("no phi'"),
    r"this is the softmax's backward": _mistake("softmax backward"),
    r"ReLU's derivative is switched at s = 0": _mistake("relu kink at 0"),
    r"the values' part is missing": _mistake("keys only"),
    r"the keys' part is missing": _mistake("values only"),
    r"residual path is missing": _mistake("no residual"),
    r"queries' contribution is missing": _mistake("no query part"),
    r"changed dout in place": _mistake("mutates dout"),
    r"one gradient per task": _mistake("per-task weights"),
    r"averaged over the batch": _mistake("mean over batch"),
    r"dW on .*dW is transposed": _mistake("dW transposed"),
    r"dW on .*largest difference.*finite-difference check fails too": _mistake("perturbed dW"),
    r"return the tuple \(dZ, dW, dV\)": lambda dout, cache: list(nf.elementwise_attention_backward(dout, cache)),
}


def test_backward_checker():
    assert_checker_contract(ch10.check_elementwise_backward, nf.elementwise_attention_backward,
                            mistakes=BACKWARD_MISTAKES)


def test_student_backward_without_a_mistake_passes():
    assert ch10.check_elementwise_backward(_backward) is True


@pytest.mark.parametrize("activation", nf.ACTIVATIONS)
def test_backward_reference_is_independent(activation):
    """The student-style backward without a mistake equals the package's (so the mistakes are the only change)."""
    rng = np.random.default_rng(1)
    Z, (W, V) = rng.standard_normal((4, 6, 5)), 0.3 * rng.standard_normal((2, 6, 6))
    dout = rng.standard_normal(Z.shape)
    cache = nf.elementwise_attention_forward(Z, W, V, 3, activation)[1]
    for mine, ref in zip(_backward(dout, cache), nf.elementwise_attention_backward(dout, cache)):
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the step-size limit
def _limit(X, mistake=None):
    n = X.shape[-2]
    Xc = X - X.mean(axis=-2, keepdims=True) if mistake in ("centred", "np.cov") else X
    scale = {"no 1/n": 1.0, "np.cov": 1.0 / (n - 1)}.get(mistake, 1.0 / n)
    lam = np.linalg.eigvalsh(_T(Xc) @ Xc * scale)
    if mistake == "smallest":
        return 2.0 / lam[..., 0]
    if mistake == "no 2":
        return 1.0 / lam[..., -1]
    if mistake == "one for the batch":
        return 2.0 / lam[..., -1].max()
    return 2.0 / lam[..., -1]


LIMIT_MISTAKES = {
    r"missing its 1/n": lambda X: _limit(X, "no 1/n"),
    r"smallest eigenvalue": lambda X: _limit(X, "smallest"),
    r"factor 2 is missing": lambda X: _limit(X, "no 2"),
    r"data were centred": lambda X: _limit(X, "centred"),
    r"np.cov divides by n - 1": lambda X: _limit(X, "np.cov"),
    r"one number for the whole batch": lambda X: _limit(X, "one for the batch"),
}


def test_step_limit_checker():
    assert_checker_contract(ch10.check_step_limit, ch10.step_limits, mistakes=LIMIT_MISTAKES)


def test_step_limit_reference_is_the_stability_limit_of_gd():
    """Below the limit GD on the squared loss converges, above it it blows up (the claim the checker teaches)."""
    X, y, _ = nf.sample_tasks(np.random.default_rng(2), 3, 20, 4)
    limit = _limit(X)
    np.testing.assert_allclose(limit, ch10.step_limits(X), rtol=1e-13)
    for b in range(3):
        below = nf.gd(np.zeros(4), X[b], y[b], 0.95 * limit[b], 2000, loss="squared")[-1]
        above = nf.gd(np.zeros(4), X[b], y[b], 1.05 * limit[b], 2000, loss="squared")[-1]
        assert np.linalg.norm(nf.squared_loss_grad(below, X[b], y[b])) < 1e-8
        assert np.linalg.norm(above) > 1e10


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    "my_elementwise_backward": (
        "import ngdformer as nf\n"
        "def my_elementwise_backward(dout, cache):\n"
        "    return nf.elementwise_attention_backward(dout, cache)\n"),
    "my_step_limit": (
        "from ngdformer.experiments.ch10 import step_limits\n"
        "def my_step_limit(X):\n"
        "    return step_limits(X)\n"),
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch10, "check_" + name[3:])
    assert check(namespace[name]) is True
