"""Checkers for chapter 08, training a looped model from scratch (see ``ngdformer.exercises`` for the protocol).

- :func:`check_looped_backward`: ``fn(dout, caches) -> (dZ, dW, dV)``, backpropagation through the
  L applications of one shared layer (answer key: :func:`ngdformer.looped_backward`).
- :func:`check_looped_loss`: ``fn(W, V, Z, depth, w_star) -> (J, dW, dV)``, the end loss and its
  gradients (answer key: :func:`ngdformer.looped_training.looped_loss`).
- :func:`check_structured_iterate`: ``fn(X, y, w0, c1, c2, depth) -> w_L``, the iterate of the layer with
  only :math:`W_{12} = -c_1 I`, :math:`V_{21} = c_2 I`, from NGD (answer key:
  :func:`ngdformer.experiments.ch08.structured_iterate`).
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_backward
from ..construction import looped_backward, looped_forward, looped_forward_with_cache
from ..gradcheck import check_directions, gradient_errors
from ..looped_training import looped_loss
from ..solvers import ngd
from ..tasks import embed, read_weights, sample_tasks
from ..training import from_blocks
from . import attempt, checker, compare

# (B or None for unbatched, d, n, L): B != D = 2d != N = n + 1 != n, so no transposed layout passes by shape
_BACKWARD_CASES = ((3, 2, 6, 3), (None, 3, 4, 2), (5, 1, 3, 4))
_LOSS_CASES = ((3, 2, 5, 3), (5, 3, 7, 2))


def _tokens_are_columns(name: str, got, expected_shape) -> None:
    """A shape-only message for the usual layout mistake (tokens as rows)."""
    shape = np.shape(got)
    if shape != tuple(expected_shape) and shape == tuple(expected_shape[:-2]) + tuple(expected_shape[-2:][::-1]):
        raise AssertionError(f"{name}: tokens are columns: expected shape {tuple(expected_shape)}, got {shape}")


def _triple(got, what: str):
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        raise AssertionError(f"return the tuple {what}")
    return got


def _backward_setup(case, seed: int):
    B, d, n, L = case
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n + 1
    lead = () if B is None else (B,)
    Z = rng.standard_normal(lead + (D, N))  # tokens are columns
    W, V = 0.5 * rng.standard_normal((2, D, D))
    _, caches = looped_forward_with_cache(Z, W, V, n, L)
    dout = rng.standard_normal(Z.shape)  # upstream gradient: of f = sum(dout * Z_L)
    return Z, W, V, n, L, caches, dout


def _backward_mistakes(dout, caches):
    """Reference (dZ, dW, dV) and the usual wrong answers, each a (message, (dZ, dW, dV)) pair."""
    right = looped_backward(dout, caches)
    steps = [attention_backward(dout, c) for c in caches]  # every application fed the untouched dout
    g, first = dout, None
    for cache in reversed(caches):  # the right order, keeping the first application's own gradient
        g, gW, gV = attention_backward(g, cache)
        first = (gW, gV)
    fwd_dZ, fwd_dW, fwd_dV = dout, 0.0, 0.0
    for cache in caches:  # forward order
        fwd_dZ, gW, gV = attention_backward(fwd_dZ, cache)
        fwd_dW, fwd_dV = fwd_dW + gW, fwd_dV + gV
    L = len(caches)
    wrong = [
        ("only the last application's gradient is kept: the shared weights are used L times, "
         "so every application's gradient must be added", (right[0], steps[-1][1], steps[-1][2])),
        ("only one application's gradient survives (the last one undone overwrote the others): "
         "accumulate with += instead of =", (right[0], *first)),
        ("the applications are undone in forward order: backpropagation starts from the last application",
         (fwd_dZ, fwd_dW, fwd_dV)),
        ("dout is not propagated between applications: each application must receive the gradient "
         "returned by the one after it", (steps[0][0], sum(s[1] for s in steps), sum(s[2] for s in steps))),
        ("the gradients of the applications are averaged: a weight used L times collects the sum",
         (right[0], right[1] / L, right[2] / L)),
        ("dZ is dout unchanged: dZ is the gradient with respect to Z_0, after all L applications are undone",
         (dout, right[1], right[2])),
    ]
    return right, wrong


def _compare_triple(got, right, wrong, names, order=(1, 2, 0), rtol=1e-8, atol=1e-10) -> None:
    """Compare got[k] with right[k] in ``order``, naming the wrong answer it matches (its k-th entry)."""
    for k in order:
        compare(names[k], got[k], right[k], rtol=rtol, atol=atol,
                alternatives=[(message, triple[k]) for message, triple in wrong])


@checker("looped backward")
def check_looped_backward(my_looped_backward) -> str:
    """``my_looped_backward(dout, caches)`` -> (dZ, dW, dV) through the L applications of one shared layer.

    ``caches`` come from :func:`ngdformer.looped_forward_with_cache`; the answer key is
    :func:`ngdformer.looped_backward`. Compared on three shapes (batched and unbatched), then
    against central differences (:func:`ngdformer.check_directions`).
    """
    worst = 0.0
    for seed, case in enumerate(_BACKWARD_CASES):
        Z, W, V, n, L, caches, dout = _backward_setup(case, seed)
        dout_in, caches_in = dout.copy(), list(caches)
        got = _triple(attempt(my_looped_backward, dout_in, caches_in), "(dZ, dW, dV)")
        if not np.array_equal(dout_in, dout):
            raise AssertionError("dout was modified: build new arrays instead of writing into the input")
        if len(caches_in) != len(caches) or any(a is not b for a, b in zip(caches_in, caches)):
            raise AssertionError("the list caches was modified (reversed or emptied in place?): "
                                 "iterate over it without changing it, e.g. with reversed(caches)")
        _tokens_are_columns("dZ", got[0], Z.shape)
        right, wrong = _backward_mistakes(dout, caches)
        _compare_triple(got, right, wrong, ("dZ", "dW", "dV"))  # dW, dV first: they show the accumulation
        if seed == 0:  # the package's gradient checker on the student's dW, dV
            rng = np.random.default_rng(10)
            f = lambda w, v: float(np.sum(dout * looped_forward(Z, w, v, n, L)))  # noqa: E731
            for name, x, g, fx in (("dW", W, got[1], lambda w: f(w, V)), ("dV", V, got[2], lambda v: f(W, v))):
                err = gradient_errors(*check_directions(fx, x, np.asarray(g, dtype=float), rng, directions=4))
                if np.any(err > 1):
                    raise AssertionError(f"{name} disagrees with central differences")
                worst = max(worst, float(err.max()))
    return f"dW, dV match central differences at {worst:.1e} of the tolerance"


def _loss_setup(case, seed: int):
    B, d, n, L = case
    rng = np.random.default_rng(seed)
    X, y, w_star = sample_tasks(rng, B, n, d)
    Z = embed(X, y, 0.5 * rng.standard_normal((B, d)))  # (B, 2d, n + 1), a non-zero start w0
    W, V = 0.5 * rng.standard_normal((2, 2 * d, 2 * d))
    return Z, W, V, L, w_star


def _loss_mistakes(Z, W, V, L, w_star):
    """Reference (J, dW, dV) and the usual wrong answers, each a (message, (J, dW, dV)) pair."""
    B, D, N = Z.shape
    d = D // 2
    ZL, caches = looped_forward_with_cache(Z, W, V, N - 1, L)

    def seeded(rows, cols, r):
        dZL = np.zeros_like(ZL)
        dZL[:, rows, cols] = r
        return looped_backward(dZL, caches)[1:]

    def read(block_rows, col, Zr=ZL):
        r = Zr[:, block_rows, col] - w_star  # (B, d)
        return 0.5 * float(np.sum(r * r)) / B, r

    J, r = read(slice(d, None), -1)
    dW, dV = seeded(slice(d, None), -1, r / B)
    wrong = [
        ("the gradient misses the 1/B of the batch mean (J has it, dW and dV do not)", (J, B * dW, B * dV)),
        ("J and its gradient miss the 1/B of the batch mean (a sum over tasks instead of a mean)",
         (B * J, B * dW, B * dV)),
        ("the factor 1/2 of the loss is missing", (2 * J, 2 * dW, 2 * dV)),
        ("the sign is flipped: the residual is taken the wrong way round", (J, -dW, -dV)),
        ("w_L is read from the top half of the query column: the iterate lives in the bottom half",
         (read(slice(None, d), -1)[0], *seeded(slice(None, d), -1, read(slice(None, d), -1)[1] / B))),
        ("w_L is read from the first column: the query is the last column",
         (read(slice(d, None), 0)[0], *seeded(slice(d, None), 0, read(slice(d, None), 0)[1] / B))),
        ("the gradient is seeded in the top half of the query column: w_L is its bottom half",
         (J, *seeded(slice(None, d), -1, r / B))),
        ("the gradient is seeded in the first column: the query is the last column",
         (J, *seeded(slice(d, None), 0, r / B))),
        ("J is computed on Z_0: run the L applications first", (read(slice(d, None), -1, Z)[0], dW, dV)),
    ]
    return (J, dW, dV), wrong


@checker("looped loss")
def check_looped_loss(my_looped_loss) -> str:
    r"""``my_looped_loss(W, V, Z, depth, w_star)`` -> (J, dW, dV) of :math:`J = \frac1B\sum_b \tfrac12\|w_L - w^*\|^2`.

    The answer key is :func:`ngdformer.looped_training.looped_loss` with objective ``"w_star"``.
    Compared on two shapes with a non-zero start :math:`w_0`, then dW and dV against central
    differences of the student's own J.
    """
    worst = 0.0
    for seed, case in enumerate(_LOSS_CASES):
        Z, W, V, L, w_star = _loss_setup(case, seed)
        inputs = [a.copy() for a in (W, V, Z, w_star)]
        got = _triple(attempt(my_looped_loss, *inputs[:3], L, inputs[3]), "(J, dW, dV)")
        if not all(np.array_equal(a, b) for a, b in zip(inputs, (W, V, Z, w_star))):
            raise AssertionError("an argument was modified: build new arrays instead of writing into the inputs")
        _, wrong = _loss_mistakes(Z, W, V, L, w_star)  # computed on the textbook layer
        right = looped_loss(W, V, Z, L, "w_star", w_star=w_star)  # the answer key (on the fast kernels)
        _compare_triple(got, right, wrong, ("J", "dW", "dV"), order=(0, 1, 2))
        if seed == 0:
            rng = np.random.default_rng(11)
            for name, x, g, fx in (("dW", W, got[1], lambda w: attempt(my_looped_loss, w, V, Z, L, w_star)[0]),
                                   ("dV", V, got[2], lambda v: attempt(my_looped_loss, W, v, Z, L, w_star)[0])):
                err = gradient_errors(*check_directions(fx, x, np.asarray(g, dtype=float), rng, directions=4))
                if np.any(err > 1):
                    raise AssertionError(f"{name} disagrees with central differences of your J")
                worst = max(worst, float(err.max()))
    return f"dW, dV match central differences at {worst:.1e} of the tolerance"


def _structured(X, y, w0, c1, c2, depth):
    """The looped layer W12 = -c1 I, V21 = c2 I itself (query column only: its context is inert)."""
    d = X.shape[-1]
    W, V = from_blocks((-c1 * np.eye(d), np.zeros((d, d)), c2 * np.eye(d)), d)
    return read_weights(looped_forward(embed(X, y, w0), W, V, X.shape[-2], depth, query_only=True))


@checker("structured iterate")
def check_structured_iterate(my_structured_iterate) -> None:
    r"""``my_structured_iterate(X, y, w0, c1, c2, depth)`` -> :math:`w_L` of the layer :math:`(-c_1 I, c_2 I)`.

    Compared with the looped layer itself (batched and unbatched, non-zero :math:`w_0`); the answer
    key is :func:`ngdformer.experiments.ch08.structured_iterate`.
    """
    cases = (((4, 7, 3), 1.7, 0.3, 5), ((6, 2), 0.6, 0.9, 4))
    for seed, (shape, c1, c2, L) in enumerate(cases):
        rng = np.random.default_rng(20 + seed)
        X, y, _ = sample_tasks(rng, shape[0] if len(shape) == 3 else 1, *shape[-2:])  # (B, n, d), (B, n)
        if len(shape) == 2:  # unbatched: one context, X (n, d)
            X, y = X[0], y[0]
        w0 = 0.5 * rng.standard_normal(X.shape[:-2] + X.shape[-1:])
        inputs = [a.copy() for a in (X, y, w0)]
        got = attempt(my_structured_iterate, *inputs, c1, c2, L)
        if not all(np.array_equal(a, b) for a, b in zip(inputs, (X, y, w0))):
            raise AssertionError("an argument was modified: build new arrays instead of writing into the inputs")
        expected = _structured(X, y, w0, c1, c2, L)
        wrong = [
            ("the start is not rescaled: the recursion runs on the rescaled iterate from its very first value",
             ngd(w0, X, y, c1 * c2, L)[-1] / c1),
            ("the start w0 is ignored", ngd(np.zeros_like(w0), X, y, c1 * c2, L)[-1] / c1),
            ("the result is still the rescaled iterate: map it back to w", ngd(c1 * w0, X, y, c1 * c2, L)[-1]),
            ("the rescaling is undone the wrong way (multiplied where it should divide)",
             c1 * ngd(c1 * w0, X, y, c1 * c2, L)[-1]),
            ("the NGD step is c2 alone: in the rescaled iterate the step is not c2",
             ngd(c1 * w0, X, y, c2, L)[-1] / c1),
            ("the NGD step is c1 alone: in the rescaled iterate the step is not c1",
             ngd(c1 * w0, X, y, c1, L)[-1] / c1),
            ("the whole trajectory was returned: return the last iterate w_L, shape (..., d)",
             ngd(c1 * w0, X, y, c1 * c2, L) / c1),
        ]
        compare("w_L", got, expected, rtol=1e-9, atol=1e-12, alternatives=wrong)
