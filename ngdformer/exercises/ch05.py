"""Checkers for chapter 05, stacking and looping (see ``ngdformer.exercises`` for the protocol).

The answer keys: :func:`ngdformer.stack_backward` and :func:`ngdformer.looped_backward`
(``ngdformer/construction.py``), :func:`ngdformer.separator_segment` (``ngdformer/boundaries.py``).
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_backward
from ..boundaries import separator_segment
from ..construction import looped_backward, looped_forward, looped_forward_with_cache, stack_backward, stack_forward
from ..gradcheck import assert_gradients_close, check_directions
from ..solvers import ngd
from ..tasks import sample_tasks
from . import attempt, checker, compare

# (batch shape, D, N, n_context, number of layers L): B != D != N != n, one batched and one unbatched case
_CASES = (((5,), 4, 7, 6, 3), ((), 6, 4, 3, 2))


def _problem(rng, batch, D, N, n, L, shared: bool):
    """Random tokens, layers (one shared pair if ``shared``) and upstream gradient; the forward caches."""
    Z = rng.standard_normal(batch + (D, N))
    if shared:
        W, V = rng.standard_normal((2, D, D)) / np.sqrt(D)
        layers = [(W, V)] * L
        _, caches = looped_forward_with_cache(Z, W, V, n, L)
    else:
        layers = [tuple(rng.standard_normal((2, D, D)) / np.sqrt(D)) for _ in range(L)]
        _, caches = stack_forward(Z, layers, n)
    dout = rng.standard_normal(Z.shape)
    return Z, layers, caches, dout


def _snapshot(dout, caches):
    """Copies of every array the student's function receives, to detect in-place changes."""
    return dout.copy(), [[np.copy(a) for a in c if isinstance(a, np.ndarray)] for c in caches]


def _assert_unchanged(snapshot, dout, caches) -> None:
    dout0, arrays0 = snapshot
    changed = not np.array_equal(dout0, dout)
    for c, before in zip(caches, arrays0):
        after = [a for a in c if isinstance(a, np.ndarray)]
        changed |= any(not np.array_equal(a, b) for a, b in zip(after, before))
    if changed:
        raise AssertionError("your function changed its input (dout or a cache) in place: "
                             "work on new arrays and leave the arguments untouched")


def _numbers(name, a) -> np.ndarray:
    try:
        return np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: expected an array of numbers, got {type(a).__name__}") from None


def _check_dZ(got, expected, alternatives) -> None:
    """dZ: the right layout (tokens are columns), then the comparison naming the usual mistakes."""
    got = _numbers("dZ", got)
    rows = expected.shape[:-2] + expected.shape[:-3:-1]
    if got.shape != expected.shape and got.shape == rows:
        raise AssertionError(f"dZ: tokens are columns: expected shape {expected.shape}, got {got.shape} "
                             "(tokens as rows)")
    compare("dZ", got, expected, alternatives=alternatives)


def _wrong_orders(dout, caches):
    """The usual wrong backward passes: (dZ, per-layer grads) of each."""
    forward, g = dout, []
    for cache in caches:  # undone in forward order
        forward, dW, dV = attention_backward(forward, cache)
        g.append((dW, dV))
    fed = [attention_backward(dout, cache) for cache in caches]  # every layer fed the original dout
    return {"forward": (forward, g), "fed": (fed[0][0], [(dW, dV) for _, dW, dV in fed]),
            "last_only": attention_backward(dout, caches[-1])[0]}


_FORWARD_ORDER = ("the layers were undone in forward order: the backward pass starts from the layer whose "
                  "output dout belongs to")
_NOT_PROPAGATED = ("every layer was fed the original dout: each layer's backward must receive the gradient "
                   "coming from the layer after it")
_DOUT_RETURNED = ("dZ is the incoming dout unchanged: the gradient was never carried back through the layers")
_LAST_ONLY = "dZ went back through the last layer only: carry it through every layer, down to the input"


def _dZ_alternatives(dout, wrong):
    return [(_DOUT_RETURNED, dout), (_FORWARD_ORDER, wrong["forward"][0]), (_NOT_PROPAGATED, wrong["fed"][0]),
            (_LAST_ONLY, wrong["last_only"])]


def _gradcheck(J, x, grad, rng, what) -> None:
    num, ana = check_directions(J, x, grad, rng, directions=2)
    assert_gradients_close(num, ana, f"{what} against finite differences")


def _stacked(pairs):
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@checker("stack backward")
def check_stack_backward(my_stack_backward) -> str:
    """``my_stack_backward(dout, caches)`` -> ``(dZ, grads)``, grads a list of (dW, dV) per layer in forward order.

    Compared with :func:`ngdformer.stack_backward` on a batched and an unbatched stack of
    random layers, then checked against finite differences (:func:`ngdformer.check_directions`).
    """
    rng = np.random.default_rng(50)
    for batch, D, N, n, L in _CASES:
        Z, layers, caches, dout = _problem(rng, batch, D, N, n, L, shared=False)
        snapshot = _snapshot(dout, caches)
        got = attempt(my_stack_backward, dout, caches)
        _assert_unchanged(snapshot, dout, caches)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise AssertionError("return the pair (dZ, grads)")
        dZ, grads = got
        try:
            grads = [tuple(pair) for pair in grads]
        except TypeError:
            raise AssertionError("grads must be a list with one (dW, dV) pair per layer") from None
        if len(grads) != L:
            raise AssertionError(f"grads must be a list with one (dW, dV) pair per layer: {L} layers, "
                                 f"got {len(grads)} entries")
        if any(len(pair) != 2 for pair in grads):
            raise AssertionError("grads must be a list with one (dW, dV) pair per layer: an entry is not a pair")
        ref_dZ, ref = stack_backward(dout, caches)
        wrong = _wrong_orders(dout, caches)
        _check_dZ(dZ, ref_dZ, _dZ_alternatives(dout, wrong))
        try:
            got_dW, got_dV = _stacked(grads)
        except ValueError:
            raise AssertionError(f"every dW and dV must have the shape of its weights, ({D}, {D})") from None
        ref_dW, ref_dV = _stacked(ref)
        for name, mine, expected, other in (("dW", got_dW, ref_dW, ref_dV), ("dV", got_dV, ref_dV, ref_dW)):
            k = 0 if name == "dW" else 1
            compare(f"grads ({name} of every layer)", mine, expected, alternatives=[
                ("the grads list is reversed: grads[0] must belong to the first layer applied (forward order)",
                 expected[::-1]),
                (_FORWARD_ORDER, _stacked(wrong["forward"][1])[k]),
                (_FORWARD_ORDER + " (and the list is reversed)", _stacked(wrong["forward"][1])[k][::-1]),
                (_NOT_PROPAGATED, _stacked(wrong["fed"][1])[k]),
                (_NOT_PROPAGATED + " (and the list is reversed)", _stacked(wrong["fed"][1])[k][::-1]),
                ("dW and dV are swapped in each pair: return (dW, dV)", other),
            ])

        def J(layers_):
            return float(np.sum(dout * stack_forward(Z, layers_, n)[0]))

        _gradcheck(lambda Z_: float(np.sum(dout * stack_forward(Z_, layers, n)[0])), Z, _numbers("dZ", dZ), rng, "dZ")
        for k in range(L):
            W, V = layers[k]
            _gradcheck(lambda W_: J(layers[:k] + [(W_, V)] + layers[k + 1:]), W, got_dW[k], rng, f"dW of layer {k}")
            _gradcheck(lambda V_: J(layers[:k] + [(W, V_)] + layers[k + 1:]), V, got_dV[k], rng, f"dV of layer {k}")
    return "matches nf.stack_backward and finite differences, batched and unbatched"


@checker("looped backward")
def check_looped_backward(my_looped_backward) -> str:
    """``my_looped_backward(dout, caches)`` -> ``(dZ, dW, dV)`` of one layer applied ``len(caches)`` times.

    Compared with :func:`ngdformer.looped_backward` (batched and unbatched, and depth 0),
    then checked against finite differences.
    """
    rng = np.random.default_rng(51)
    for batch, D, N, n, L in _CASES:
        Z, layers, caches, dout = _problem(rng, batch, D, N, n, L, shared=True)
        W, V = layers[0]
        snapshot = _snapshot(dout, caches)
        got = attempt(my_looped_backward, dout, caches)
        _assert_unchanged(snapshot, dout, caches)
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            raise AssertionError("return the triple (dZ, dW, dV)")
        dZ, dW, dV = (_numbers(name, g) for name, g in zip(("dZ", "dW", "dV"), got))
        ref_dZ, ref_dW, ref_dV = looped_backward(dout, caches)
        wrong = _wrong_orders(dout, caches)
        _check_dZ(dZ, ref_dZ, _dZ_alternatives(dout, wrong))
        _, per_layer = stack_backward(dout, caches)
        for name, mine, expected, other, k in (("dW", dW, ref_dW, ref_dV, 0), ("dV", dV, ref_dV, ref_dW, 1)):
            if mine.shape == (L, D, D):
                raise AssertionError(f"{name} has one entry per application, shape {mine.shape}: the shared "
                                     f"weights need one ({D}, {D}) gradient")
            one = "only one application's gradient: the shared weights are used by every application, " \
                  "and each use contributes"
            alternatives = [
                (one, per_layer[0][k]), (one, per_layer[-1][k]),
                ("averaged over the applications: each use of the shared weights contributes in full", expected / L),
                (_FORWARD_ORDER, sum(g[k] for g in wrong["forward"][1])),
                (_NOT_PROPAGATED, sum(g[k] for g in wrong["fed"][1])),
                ("dW and dV are swapped: return (dZ, dW, dV)", other),
            ]
            if batch:
                alternatives.append(("divided by the batch size: the layer's backward already sums over the batch, "
                                     "and J is the sum of dout * out", expected / batch[0]))
            compare(name, mine, expected, alternatives=alternatives)

        def J(Z_=Z, W_=W, V_=V):
            return float(np.sum(dout * looped_forward(Z_, W_, V_, n, L)))

        _gradcheck(lambda Z_: J(Z_=Z_), Z, dZ, rng, "dZ")
        _gradcheck(lambda W_: J(W_=W_), W, dW, rng, "dW")
        _gradcheck(lambda V_: J(V_=V_), V, dV, rng, "dV")
    # depth 0: no application, no cache
    dout = rng.standard_normal((3, 4, 6))
    try:
        got = attempt(my_looped_backward, dout, [])
        dZ, dW, dV = (np.asarray(g, dtype=float) for g in got)
    except (IndexError, TypeError, ValueError) as exc:
        raise AssertionError(f"depth 0 (caches == []): your function raised {type(exc).__name__}: {exc}. With no "
                             "application the weights get no contribution, and D is dout.shape[-2]") from None
    if dW.shape != (4, 4) or dV.shape != (4, 4):
        raise AssertionError(f"depth 0 (caches == []): dW and dV must still have shape (D, D) = (4, 4), got "
                             f"{dW.shape} and {dV.shape} (start the sums from arrays of that shape)")
    compare("dZ at depth 0", dZ, dout, hint="with no application the output is the input")
    compare("dW at depth 0", dW, np.zeros((4, 4)))
    compare("dV at depth 0", dV, np.zeros((4, 4)))
    return "matches nf.looped_backward and finite differences, batched, unbatched and at depth 0"


@checker("separator segment")
def check_separator_segment(my_separator_segment) -> None:
    """``my_separator_segment(w, radius)`` -> (2, 2): the two points of <w, x> = 0 at distance ``radius``."""
    for w, radius in ((np.array([3.0, -4.0]), 2.5), (np.array([0.2, 1.5]), 0.7)):
        w_before = w.copy()
        got = np.asarray(attempt(my_separator_segment, w, radius), dtype=float)
        if not np.array_equal(w, w_before):
            raise AssertionError("your function changed w in place: leave its argument untouched")
        if got.shape != (2, 2):
            raise AssertionError(f"shape {got.shape}, expected (2, 2): one point per row")
        if not np.allclose(got @ w, 0.0, atol=1e-10):
            if np.allclose(np.abs(got @ w), radius * np.linalg.norm(w)):
                raise AssertionError("the points lie along w itself: the decision line is orthogonal to w")
            raise AssertionError("the points must lie on the line <w, x> = 0 (orthogonal to w)")
        if not np.allclose(np.linalg.norm(got, axis=-1), radius):
            raise AssertionError("each point must be at distance `radius` from the origin (is the direction "
                                 "normalized?)")
        if not np.allclose(got[0], -got[1]):
            raise AssertionError("the two points must be on opposite sides of the origin")
        compare("segment", np.sort(got, axis=0), np.sort(separator_segment(w, radius), axis=0))


@checker("norm bound")
def check_norm_bound(my_norm_bound) -> None:
    r"""``my_norm_bound(X, eta, L)``: the triangle-inequality bound on :math:`\|w_L\|` from :math:`w_0 = 0`."""
    rng = np.random.default_rng(52)
    for n, d, eta, L in ((8, 3, 0.4, 7), (5, 12, 1.5, 2)):
        X, y, _ = sample_tasks(rng, 1, n, d)
        X[0, 0] *= 3.0  # one long example: max, mean and sum of the norms differ clearly
        got = attempt(my_norm_bound, X[0], eta, L)
        norms = np.linalg.norm(X[0], axis=-1)  # (n,)
        try:
            value = float(np.asarray(got, dtype=float))
        except (TypeError, ValueError):
            raise AssertionError(f"return one number (a float), got an array of shape {np.shape(got)}") from None
        wL = ngd(np.zeros(d), X[0], y[0], eta, L)[-1]
        expected = eta * L * norms.max()
        for message, wrong in (
            ("the bound must grow with the depth: each of the L layers adds a step", eta * norms.max()),
            ("every step is scaled by the step size eta", L * norms.max()),
            ("you summed the norms over the examples: how long can a convex combination of vectors be?",
             eta * L * norms.sum()),
            ("the mean norm is not a bound: the weights p_i may all sit on one example", eta * L * norms.mean()),
            ("the norms were taken over the wrong axis: examples are rows of X",
             eta * L * np.linalg.norm(X[0], axis=0).max()),
            ("squared norms: the triangle inequality bounds ||w_L|| by lengths, not squared lengths",
             eta * L * (norms ** 2).max()),
        ):
            if np.isclose(value, wrong, rtol=1e-8, atol=0.0):
                raise AssertionError(f"norm bound: {message}")
        if not np.isfinite(value):
            raise AssertionError("norm bound: not a finite number")
        if np.linalg.norm(wL) > value * (1 + 1e-12):
            raise AssertionError("norm bound: not a bound: NGD from w_0 = 0 reached a larger ||w_L|| on this task")
        if not np.isclose(value, expected, rtol=1e-8, atol=0.0):
            raise AssertionError("norm bound: a bound, but not the tightest one the triangle inequality gives"
                                 if value > expected else
                                 "norm bound: smaller than the triangle-inequality bound: why would it hold "
                                 "for every context?")
