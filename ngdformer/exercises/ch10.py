"""Checkers for chapter 10, elementwise attention (see ``ngdformer.exercises`` for the protocol).

- :func:`check_elementwise_backward`: ``fn(dout, cache) -> (dZ, dW, dV)``, the backward pass of one
  elementwise attention layer (answer key: :func:`ngdformer.elementwise_attention_backward`).
- :func:`check_step_limit`: ``fn(X) -> eta_max``, the largest stable GD step on the squared loss of each
  context, :math:`2/\\lambda_{\\max}` of its second-moment matrix (answer key:
  :func:`ngdformer.experiments.ch10.step_limits`).
"""

from __future__ import annotations

import numpy as np

from ..elementwise import ACTIVATIONS, elementwise_attention_backward, elementwise_attention_forward, phi_prime
from ..experiments.ch10 import step_limits
from ..gradcheck import check_directions, gradient_errors
from ..tasks import sample_tasks
from . import checker, compare
from .ch03 import _call, _swap  # the same layer conventions as chapter 03's checkers

# (leading batch shape, d, N, n_context): B, D = 2d, N and n differ in every case; the last has
# n_context = N - 2, so a layer that takes the keys to be all but the last column fails.
_BACKWARD_CASES = (((3,), 2, 8, 7), ((), 3, 5, 4), ((5,), 3, 4, 2))


def _draw(seed: int, batch: tuple, d: int, N: int, n: int):
    """Tokens, weights and an upstream gradient; W scaled so that every score lies in [-3, 3].

    Scores of a few units cross the ReLU's kink at -1 on both sides and keep e^s moderate, so the
    finite-difference verdict in the messages means something for every activation.
    """
    rng = np.random.default_rng(seed)
    D = 2 * d
    Z = rng.standard_normal(batch + (D, N))
    W, V = rng.standard_normal((2, D, D)) / np.sqrt(D)
    W = W * min(1.0, 3.0 / np.max(np.abs(_swap(Z[..., :n]) @ W @ Z)))
    return Z, W, V, rng.standard_normal(Z.shape)


def _backward_reference(dout, cache):
    """The reference gradients and the usual wrong versions of each (checker side)."""
    dZ, dW, dV = elementwise_attention_backward(dout, cache)
    Z, W, V, n, activation, T, S, A, U = cache
    K, G = Z[..., :n], dout
    D, B = Z.shape[-2], int(np.prod(Z.shape[:-2]))

    def total(M):  # (..., D, D) -> (D, D)
        return M.reshape(-1, D, D).sum(axis=0)

    def pad(dK):  # (..., D, n) -> (..., D, N)
        full = np.zeros_like(Z)
        full[..., :n] = dK
        return full

    dU = V.T @ G
    dA = _swap(K) @ dU
    dK_values = dU @ _swap(A)

    def through(dS):  # dZ and dW for a given dS
        dT = K @ dS
        return G + W.T @ dT + pad(dK_values + T @ _swap(dS)), total(dT @ _swap(Z))

    dS = phi_prime(S, activation) * dA
    candidates = [
        ("dS uses phi(S), the activation itself; the chain rule needs its derivative phi'(S)", A * dA),
        ("dS is missing the factor phi'(S): the activation is not the identity", dA),
        ("this is the softmax's backward (it subtracts <A, dA>); an elementwise activation has no "
         "normalisation over the keys, so dS = phi'(S) * dA", A * (dA - np.sum(A * dA, axis=-2, keepdims=True))),
        ("the ReLU's derivative is switched at s = 0; phi(s) = max(0, 1 + s) has its kink at s = -1",
         (S > 0) * dA),
    ]
    wrong = {"dW": [("dW is transposed (check which index is the row)", _swap(dW))],
             "dV": [("dV is transposed (check which index is the row)", _swap(dV))],
             "dZ": [("the residual path is missing (out contains Z itself)", dZ - G),
                    ("the queries' contribution is missing (every column is also a query)", dZ - W.T @ K @ dS),
                    ("only one of the two contributions to dK: K is both the keys and the values (the values' part "
                     "is missing)", dZ - pad(dK_values)),
                    ("only one of the two contributions to dK: K is both the keys and the values (the keys' part "
                     "is missing)", dZ - pad(T @ _swap(dS)))]}
    for message, dS_wrong in candidates:
        if not np.allclose(dS_wrong, dS, rtol=1e-8, atol=1e-10):  # e.g. dS = dA is right for "linear"
            dZ_wrong, dW_wrong = through(dS_wrong)
            wrong["dZ"].append((message, dZ_wrong))
            wrong["dW"].append((message, dW_wrong))
    if Z.ndim > 2:
        for name, grad in (("dW", dW), ("dV", dV)):
            wrong[name].append((f"{name} is averaged over the batch; the weights are shared, so their gradient "
                                "is the sum over the tasks", grad / B))
    return (dZ, dW, dV), wrong


def _fd_failure(k: int, grad, Z, W, V, n, activation, dout, seed: int) -> str | None:
    """The package's gradient check of gradient k (0: dZ, 1: dW, 2: dV) along random directions: None if it passes."""
    def J(x):
        inputs = [Z, W, V]
        inputs[k] = x
        return np.sum(dout * elementwise_attention_forward(*inputs, n, activation)[0])

    num, ana = check_directions(J, (Z, W, V)[k], grad, np.random.default_rng(seed), directions=3)
    errors = gradient_errors(num, ana)
    if np.all(errors <= 1.0):
        return None
    return f"along a random direction it is off by {errors.max():.3g} times the tolerance"


@checker("elementwise backward")
def check_elementwise_backward(my_elementwise_backward) -> str:
    """``my_elementwise_backward(dout, cache)`` -> ``(dZ, dW, dV)``, for ``nf.elementwise_attention_forward``'s cache.

    ``dout`` (..., D, N); ``dZ`` (..., D, N), ``dW`` and ``dV`` (D, D) summed over the batch. For every
    activation ("relu" and "sigmoid" first: there the usual mistakes differ most) on three shapes
    (batched and not, n_context < N - 1), compared with ``nf.elementwise_attention_backward`` and checked
    by central differences (``nf.check_directions``), whose verdict is part of the message when a
    gradient matches no named mistake.
    """
    names = ("dZ", "dW", "dV")
    order = ("relu", "sigmoid") + tuple(a for a in ACTIVATIONS if a not in ("relu", "sigmoid"))
    for k_act, activation in enumerate(order):
        for k_case, (batch, d, N, n) in enumerate(_BACKWARD_CASES):
            seed = 100 * k_act + k_case
            Z, W, V, dout = _draw(seed, batch, d, N, n)
            _, cache = elementwise_attention_forward(Z, W, V, n, activation)
            what = f"the {activation} layer, Z of shape {Z.shape} with n_context = {n}"
            dout_in = dout.copy()
            got = _call(my_elementwise_backward, what, dout_in, cache)
            if not (isinstance(got, tuple) and len(got) == 3):
                raise AssertionError("return the tuple (dZ, dW, dV)")
            if not np.array_equal(dout_in, dout):
                raise AssertionError("your function changed dout in place (a `dZ = dout` followed by `+=`?): "
                                     "copy it first")
            refs, wrong = _backward_reference(dout, cache)
            D = Z.shape[-2]
            for name, grad, ref in zip(names, got, refs):
                if name != "dZ" and batch and np.shape(grad) == batch + (D, D):
                    raise AssertionError(f"{name} on {what}: one gradient per task, shape {np.shape(grad)}; the "
                                         "weights are shared by every task, so their gradient is one (D, D) matrix")
                if np.shape(grad) != ref.shape:
                    raise AssertionError(f"{name} on {what}: shape {np.shape(grad)}, expected {ref.shape}")
            for k in (2, 1, 0):  # dV, dW, dZ: the order backward computes them
                failure = _fd_failure(k, np.asarray(got[k], dtype=float), Z, W, V, n, activation, dout, seed)
                hint = (f"the finite-difference check fails too ({failure})" if failure else
                        "it passes the finite-difference check along 3 random directions, so the error is small")
                compare(f"{names[k]} on {what}", got[k], refs[k], alternatives=wrong[names[k]], hint=hint)
                if failure:
                    raise AssertionError(f"{names[k]} on {what}: the finite-difference check fails ({failure})")
    return (f"dZ, dW, dV for the {len(order)} activations on {len(_BACKWARD_CASES)} shapes, each also by "
            "finite differences")


def _limit_mistakes(X) -> list:
    """The usual wrong step limits of contexts X (..., n, d), each a (message, values) pair."""
    n = X.shape[-2]
    raw = _swap(X) @ X  # (..., d, d), without the 1/n
    lam = np.linalg.eigvalsh(raw / n)  # ascending
    Xc = X - X.mean(axis=-2, keepdims=True)
    centred = np.linalg.eigvalsh(_swap(Xc) @ Xc / n)[..., -1]
    return [
        ("the second-moment matrix is missing its 1/n: the loss is a mean over the context",
         2.0 / np.linalg.eigvalsh(raw)[..., -1]),
        ("this uses the smallest eigenvalue; the step must be stable along the steepest direction, the largest",
         2.0 / lam[..., 0]),
        ("the factor 2 is missing: GD on a quadratic is stable for eta * lambda < 2", 1.0 / lam[..., -1]),
        ("this is the eigenvalue itself; the limit is 2 / lambda_max", lam[..., -1]),
        ("the data were centred (np.cov subtracts the mean); the loss's Hessian is the uncentred second moment "
         "(1/n) sum_i x_i x_i^T", 2.0 / centred),
        ("np.cov divides by n - 1 and centres; the Hessian is (1/n) sum_i x_i x_i^T",
         2.0 / np.linalg.eigvalsh(_swap(Xc) @ Xc / (n - 1))[..., -1]),
    ]


@checker("step limit")
def check_step_limit(my_step_limit) -> str:
    r"""``my_step_limit(X)`` -> ``eta_max`` (...), :math:`2 / \lambda_{\max}(\frac1n \sum_i x_i x_i^\top)` per context.

    ``X`` of shape (..., n, d): unbatched, one and two batch axes, and a context whose points do not
    have mean zero (so that a centred covariance is caught).
    """
    rng = np.random.default_rng(10)
    cases = []
    for batch, n, d in (((), 12, 3), ((4,), 20, 5), ((2, 3), 9, 4)):
        X, _, _ = sample_tasks(rng, int(np.prod(batch)) or 1, n, d)
        cases.append(X.reshape(batch + (n, d)))
    cases.append(rng.standard_normal((3, 15, 4)) + np.array([2.0, 0.0, -1.0, 0.5]))  # off-centre points
    for X in cases:
        what = f"X of shape {X.shape}"
        got = _call(my_step_limit, what, X.copy())
        expected = step_limits(X)
        if np.ndim(got) == 0 and expected.ndim > 0:
            raise AssertionError(f"on {what}: one number for the whole batch; return one limit per context, "
                                 f"shape {expected.shape}")
        compare(f"the limit on {what}", got, expected, alternatives=_limit_mistakes(X),
                hint="take the largest eigenvalue of (1/n) X^T X for each context (np.linalg.eigvalsh takes a batch)")
    return f"2 / lambda_max on {len(cases)} shapes and an off-centre context"
