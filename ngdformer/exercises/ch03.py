"""Checkers for chapter 03, softmax attention by hand (see ``ngdformer.exercises`` for the protocol).

The answer keys are :func:`ngdformer.attention.attention_forward` and
:func:`ngdformer.attention.attention_backward` (file ``ngdformer/attention.py``). Each checker
runs the student's function on random inputs of several shapes, unbatched and batched, with
B, D, N and n all different so that a transposed layout cannot pass by its shape, and names the
usual mistakes by computing them.
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_backward, attention_forward, softmax
from ..gradcheck import check_directions, gradient_errors
from . import NotAttempted, attempt, checker, compare

# (leading batch shape, d, N, n_context): B, D = 2d, N and n differ in every case, and the
# last case has n_context = N - 2, so a layer that takes the keys to be all but the last column fails.
_FORWARD_CASES = (((), 3, 5, 4), ((3,), 2, 8, 7), ((2, 5), 3, 4, 3), ((3,), 2, 7, 5))
_BACKWARD_CASES = (((), 3, 5, 4), ((3,), 2, 8, 7), ((5,), 3, 4, 2))
_INTERMEDIATES = ("T", "S", "A", "U")


def _swap(a):
    return np.swapaxes(a, -1, -2)


def _draw(seed: int, batch: tuple, d: int, N: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    D = 2 * d
    Z = scale * rng.standard_normal(batch + (D, N))
    W, V = rng.standard_normal((2, D, D)) / np.sqrt(D)
    return Z, W, V, rng


def _call(fn, what: str, *args):
    """Call a student's function; an exception it raises becomes an AssertionError that says on which input."""
    try:
        return attempt(fn, *args)
    except (AssertionError, NotAttempted):
        raise
    except Exception as exc:
        hint = ""
        if isinstance(exc, (IndexError, ValueError)):
            hint = (". If this is a shape or indexing error: index axes from the end (-1 the token columns, "
                    "-2 the token rows; `x.T` reverses every axis of a batch, np.swapaxes(x, -1, -2) only the last two) so "
                    "that one code path serves a single task and a batch of any shape")
        raise AssertionError(f"on {what} your function raised {type(exc).__name__}: {exc}{hint}") from None


_LAYOUT = {"tokens": "tokens are columns: expected shape {expected}, got {got} (one row per feature, one column "
                     "per token)",
           "keys": "one row per key and one column per query: expected shape {expected}, got {got}"}


def _check_shape(name: str, got, expected_shape: tuple, layout: str | None = None) -> np.ndarray:
    """``got`` as a float array of ``expected_shape``, or an AssertionError naming the layout mistake.

    ``layout`` ("tokens" or "keys") says what a result with its last two axes swapped got wrong.
    """
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: expected an array of numbers, got {type(got).__name__}") from None
    if got.shape == expected_shape:
        return got
    swapped = expected_shape[:-2] + expected_shape[:-3:-1]
    if layout and got.shape == swapped:
        raise AssertionError(f"{name}: " + _LAYOUT[layout].format(expected=expected_shape, got=got.shape))
    raise AssertionError(f"{name}: shape {got.shape}, expected {expected_shape}")


def _reference_intermediates(Z, W, V, n):
    """T, S, A, U and out of the layer, and the usual wrong versions of each (checker side)."""
    out, cache = attention_forward(Z, W, V, n)
    K = Z[..., :n]
    S = _swap(K) @ cache.T
    ref = {"T": cache.T, "S": S, "A": cache.A, "U": cache.U, "out": out}
    T_wrong = W.T @ Z  # W applied transposed: keys and queries swap roles in the scores
    A_queries = softmax(S, axis=-1)  # softmax over the queries
    wrong = {
        "T": [("W is applied transposed (check which index of W meets the query)", T_wrong)],
        "S": [("the scores use W transposed (keys and queries swapped roles)", _swap(K) @ T_wrong)],
        "A": [("the softmax runs over the queries; each query's weights over the keys should sum to 1", A_queries),
              ("A is the raw scores: the softmax is missing", S)],
        "U": [("U holds the attended values before V acts on them", V @ cache.U),
              ("the softmax runs over the queries (see A)", K @ A_queries)],
        "out": [("the residual is missing (the layer adds its input)", V @ cache.U),
                ("the softmax runs over the queries; each query's weights over the keys should sum to 1",
                 Z + V @ K @ A_queries),
                ("V is applied transposed", Z + V.T @ cache.U),
                ("the keys include every column; keys and values are only the first n_context columns",
                 attention_forward(Z, W, V, n, attend_self=True)[0])],
    }
    return ref, wrong


@checker("attention forward")
def check_attention_forward(my_attention_forward) -> str:
    r"""``my_attention_forward(Z, W, V, n_context)`` -> ``(out, cache)``, the full layer (every column a query).

    ``Z`` (..., D, N), ``W``, ``V`` (D, D); ``out`` (..., D, N) and ``cache`` a dict with the
    intermediates ``"T"`` (..., D, N), ``"S"`` (..., n, N), ``"A"`` (..., n, N), ``"U"`` (..., D, N):

    .. math:: T = WZ,\ S = K^\top T,\ A = \mathrm{softmax}_{\text{keys}}(S),\ U = KA,\ \mathrm{out} = Z + VU.

    Compared with ``nf.attention_forward`` on four shapes (unbatched, one and two batch axes,
    n_context < N - 1), intermediate by intermediate, then on scores in the hundreds (a softmax
    without the max shift overflows). The input ``Z`` must not change.
    """
    cases = [(_draw(seed, batch, d, N), batch, d, N, n) for seed, (batch, d, N, n) in enumerate(_FORWARD_CASES)]
    cases.append((_draw(9, (3,), 2, 6, scale=30.0), (3,), 2, 6, 5))  # scores of several hundred
    for (Z, W, V, _), batch, d, N, n in cases:
        what = f"Z of shape {Z.shape} with n_context = {n}"
        Z_in = Z.copy()
        got = _call(my_attention_forward, what, Z_in, W, V, n)
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], dict)):
            raise AssertionError("return the pair (out, cache), with cache a dict of the intermediates "
                                 "'T', 'S', 'A', 'U'")
        out, cache = got
        if not np.array_equal(Z_in, Z):
            raise AssertionError("your function changed its input Z in place (an `out = Z` followed by `+=`?): "
                                 "copy Z before adding to it")
        missing = [k for k in _INTERMEDIATES if k not in cache]
        if missing:
            raise AssertionError(f"cache: missing the intermediates {missing} (return all of 'T', 'S', 'A', 'U')")
        ref, wrong = _reference_intermediates(Z, W, V, n)
        for name in _INTERMEDIATES + ("out",):
            mine = out if name == "out" else cache[name]
            label = f"{name} on {what}"
            if name == "S" and np.ndim(mine) >= 2 and np.shape(mine)[-1] == N and np.shape(mine)[-2] != n:
                raise AssertionError(f"{label}: {np.shape(mine)[-2]} rows, but S has one row per key and the keys "
                                     f"are the first n_context = {n} columns")
            mine = _check_shape(label, mine, ref[name].shape, layout="keys" if name in ("S", "A") else "tokens")
            compare(label, mine, ref[name], alternatives=wrong[name],
                    hint="compare your intermediates with the table of the derivation, one at a time")
    return "T, S, A, U and out on 5 shapes, batched and not, and at scores in the hundreds"


def _backward_reference(dout, cache):
    """The reference gradients and the usual wrong versions of each (checker side), from the package's cache."""
    dZ, dW, dV = attention_backward(dout, cache)
    Z, W, V, n, _, T, A, U = cache
    K, Q, G = Z[..., :n], Z, dout  # full layer: every column is a query
    D, B = Z.shape[-2], int(np.prod(Z.shape[:-2]))

    def total(M):  # (..., D, D) -> (D, D)
        return M.reshape(-1, D, D).sum(axis=0)

    def pad(dK):  # (..., D, n) -> (..., D, N), the key columns of a token gradient
        full = np.zeros_like(Z)
        full[..., :n] = dK
        return full

    dU = V.T @ G
    dA = _swap(K) @ dU
    dK_values = dU @ _swap(A)

    def through(dS):  # dZ and dW for a given dS
        dT = K @ dS
        return G + W.T @ dT + pad(dK_values + T @ _swap(dS)), total(dT @ _swap(Q))

    dS = A * (dA - np.sum(A * dA, axis=-2, keepdims=True))
    dQ, dK_keys = W.T @ K @ dS, T @ _swap(dS)
    no_subtraction = through(A * dA)
    wrong_axis = through(A * (dA - np.sum(A * dA, axis=-1, keepdims=True)))
    softmax_msgs = ("the softmax backward is missing its normalisation term (see the inline question on <A, dA>)",
                    "the softmax backward sums over the queries; the softmax runs over the keys")
    two_uses = "only one of the two contributions to dK: K is both the keys and the values"
    wrong = {
        "dV": [("dV is transposed (check which index is the row)", _swap(dV))],
        "dW": [("dW is transposed (check which index is the row)", _swap(dW)),
               (softmax_msgs[0], no_subtraction[1]), (softmax_msgs[1], wrong_axis[1])],
        "dZ": [("the residual path is missing (out contains Z itself)", dZ - G),
               ("the queries' contribution is missing (every column is also a query)", dZ - dQ),
               (f"{two_uses} (the values' part is missing)", dZ - pad(dK_values)),
               (f"{two_uses} (the keys' part is missing)", dZ - pad(dK_keys)),
               (softmax_msgs[0], no_subtraction[0]), (softmax_msgs[1], wrong_axis[0])],
    }
    if Z.ndim > 2:
        for name, grad in (("dW", dW), ("dV", dV)):
            wrong[name].append((f"{name} is averaged over the batch; the weights are shared, so their gradient "
                                "is the sum over the tasks", grad / B))
    return (dZ, dW, dV), wrong


def _fd_failure(k: int, grad, Z, W, V, n, dout, seed: int) -> str | None:
    """The package's gradient check of gradient k (0: dZ, 1: dW, 2: dV) along random directions: None if it passes."""
    def J(x):
        inputs = [Z, W, V]
        inputs[k] = x
        return np.sum(dout * attention_forward(*inputs, n)[0])

    num, ana = check_directions(J, (Z, W, V)[k], grad, np.random.default_rng(seed), directions=3)
    errors = gradient_errors(num, ana)  # <= 1 passes
    if np.all(errors <= 1.0):
        return None
    return f"along a random direction it is off by {errors.max():.3g} times the tolerance"


@checker("attention backward")
def check_attention_backward(my_attention_backward) -> str:
    """``my_attention_backward(dout, cache)`` -> ``(dZ, dW, dV)``, with ``cache`` from ``nf.attention_forward``.

    ``dout`` (..., D, N); ``dZ`` (..., D, N), ``dW`` and ``dV`` (D, D) summed over the batch.
    Compared with ``nf.attention_backward`` on three shapes (unbatched, batched, n_context < N - 1);
    each gradient also goes through the package's finite-difference check (``nf.check_directions``),
    whose verdict is part of the message when a gradient matches no named mistake.
    """
    names = ("dZ", "dW", "dV")
    for seed, (batch, d, N, n) in enumerate(_BACKWARD_CASES):
        Z, W, V, rng = _draw(100 + seed, batch, d, N)
        dout = rng.standard_normal(Z.shape)
        _, cache = attention_forward(Z, W, V, n)
        what = f"Z of shape {Z.shape} with n_context = {n}"
        dout_in = dout.copy()
        got = _call(my_attention_backward, what, dout_in, cache)
        if not (isinstance(got, tuple) and len(got) == 3):
            raise AssertionError("return the tuple (dZ, dW, dV)")
        if not np.array_equal(dout_in, dout):
            raise AssertionError("your function changed dout in place (a `dZ = dout` followed by `+=`?): copy it first")
        refs, wrong = _backward_reference(dout, cache)
        D = Z.shape[-2]
        mine = []
        for name, grad, ref in zip(names, got, refs):
            label = f"{name} on {what}"
            if name != "dZ" and batch and np.shape(grad) == batch + (D, D):
                raise AssertionError(f"{label}: one gradient per task, shape {np.shape(grad)}; the weights are "
                                     "shared by every task, so their gradient is one (D, D) matrix for the batch")
            mine.append(_check_shape(label, grad, ref.shape, layout="tokens" if name == "dZ" else None))
        for k in (2, 1, 0):  # dV, dW, dZ: the order backward computes them
            failure = _fd_failure(k, mine[k], Z, W, V, n, dout, seed)
            hint = (f"the finite-difference check fails too ({failure})" if failure else
                    "it passes the finite-difference check along 3 random directions, so the error is small: "
                    "float32 somewhere, or an approximation?")
            compare(f"{names[k]} on {what}", mine[k], refs[k], alternatives=wrong[names[k]], hint=hint)
            if failure:  # matched the reference within tolerance, yet fails the gradient check
                raise AssertionError(f"{names[k]} on {what}: the finite-difference check fails ({failure})")
    return f"dZ, dW, dV on {len(_BACKWARD_CASES)} shapes, each also by finite differences"


@checker("query backward")
def check_query_backward(my_query_backward) -> str:
    """``my_query_backward(q, K, W, V, g)`` -> (dq, dK, dW, dV) for one query column (chapter 03).

    ``q`` (D,), ``K`` (D, n), ``W``, ``V`` (D, D), ``g`` (D,) the upstream gradient of the query's
    output; returns shapes (D,), (D, n), (D, D), (D, D). Compared with ``nf.attention_backward``
    of ``nf.attention_forward(..., query_only=True)`` for two sizes.
    """
    for seed, (D, n) in enumerate(((4, 5), (6, 3))):
        rng = np.random.default_rng(seed + 1)
        K, q, g = rng.standard_normal((D, n)), rng.standard_normal(D), rng.standard_normal(D)
        W, V = rng.standard_normal((2, D, D))
        got = _call(my_query_backward, f"D = {D}, n = {n}", q, K, W, V, g)
        if not (isinstance(got, tuple) and len(got) == 4):
            raise AssertionError("return the tuple (dq, dK, dW, dV)")
        Z = np.concatenate([K, q[:, None]], axis=1)  # (D, n + 1): context columns, then the query
        _, cache = attention_forward(Z, W, V, n, query_only=True)
        dout = np.zeros_like(Z)
        dout[:, -1] = g
        dZ, dW, dV = attention_backward(dout, cache)
        p, t = cache.A[:, 0], cache.T[:, 0]  # (n,), (D,)
        dp = K.T @ V.T @ g
        ds = p * (dp - p @ dp)
        wrong = {
            "dq": [("the residual path is missing from dq (the query's output contains q itself)", dZ[:, -1] - g),
                   ("dq has only the residual: the query's path through the scores is missing", g),
                   ("the softmax backward is missing its normalisation term", g + W.T @ K @ (p * dp))],
            "dK": [("only one of the two contributions to dK: K is both the keys and the values "
                    "(the values' part is missing)", dZ[:, :n] - np.outer(V.T @ g, p)),
                   ("only one of the two contributions to dK: K is both the keys and the values "
                    "(the keys' part is missing)", dZ[:, :n] - np.outer(t, ds)),
                   ("the softmax backward is missing its normalisation term", np.outer(V.T @ g, p) + np.outer(t, p * dp))],
            "dW": [("dW is transposed (check which index is the row)", dW.T),
                   ("the softmax backward is missing its normalisation term", K @ np.outer(p * dp, q))],
            "dV": [("dV is transposed (check which index is the row)", dV.T)],
        }
        expected = (dZ[:, -1], dZ[:, :n], dW, dV)
        for name, mine, ref in zip(("dq", "dK", "dW", "dV"), got, expected):
            compare(f"{name} (D = {D}, n = {n})", mine, ref, alternatives=wrong[name])
    return "dq, dK, dW, dV for two sizes"
