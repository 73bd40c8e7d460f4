"""Checkers for chapter 06, training one layer (see ``ngdformer.exercises`` for the protocol).

The build-it exercise is :func:`check_training_loop`: the student writes the training loop
of :func:`ngdformer.train_one_step_layer` (fresh batches, the one-step loss and its
gradient, a hand-written Adam step on a cosine-decayed learning rate). The checker replays
short runs on the same random stream as the package's loop, so that a mistake in the
update (no bias correction, a sign error, one batch reused, no decay, ...) shows up
within a few iterations and can be named; then it runs the full recipe and asks for the
construction within :data:`TRAINING_BOUND`.
"""

from __future__ import annotations

import numpy as np

from ..optim import cosine_lr
from ..training import (distance_to_construction, from_blocks, init_weights, one_step_batch, one_step_loss,
                        to_blocks, train_one_step_layer)
from . import attempt, checker, compare

BLOCKS = ("W11", "W12", "W21", "W22", "V11", "V12", "V21", "V22")
UNEXCITED = frozenset({"W11", "W21", "W22", "V12", "V22"})

#: The full run of :func:`check_training_loop`: the chapter's recipe at n = 20, d = 5.
TRAINING_RUN = dict(n=20, d=5, eta=0.5, iterations=500, lr=0.02, batch=32)
#: Seed of the generator of that run.
TRAINING_SEED = 6
#: Relative distance to (W*, V*) the full run must reach. The package's loop stays below it
#: with a headroom of about 20 (worst of 40 seeds: 4.7e-6; 6.4e-7 at TRAINING_SEED).
TRAINING_BOUND = 1e-4


# ---------------------------------------------------------------------------------------
# Which blocks get zero gradient
# ---------------------------------------------------------------------------------------

@checker("unexcited blocks")
def check_unexcited_blocks(my_unexcited_blocks) -> bool:
    """``my_unexcited_blocks()`` -> the names of the blocks whose one-step gradient is exactly zero for every (W, V)."""
    got = attempt(my_unexcited_blocks)
    if isinstance(got, str):
        raise AssertionError("return a collection of names such as {'W11', ...}, not one string")
    got = {str(name).upper() for name in got}
    unknown = got - set(BLOCKS)
    if unknown:
        raise AssertionError(f"unknown block names {sorted(unknown)}; use names like 'W12' (row block, column block)")
    if got == {name[0] + name[2] + name[1] for name in UNEXCITED}:
        raise AssertionError("the row and column indices are swapped: 'W12' is row block 1 (top), "
                             "column block 2 (right)")
    if "V11" in got:
        raise AssertionError("V11 is excited: its gradient is zero where V11 = 0 (so from a zero start), "
                             "not for every (W, V)")
    excited = sorted(got & {"W12", "V21"})
    if excited:
        raise AssertionError(f"{excited} excited: the scores (W12) and the step (V21) are what the layer must learn")
    missing = UNEXCITED - got
    if missing:
        raise AssertionError(f"missing {sorted(missing)}: write the query column of the output block by block, "
                             "with the query [0; w0] and the keys' zero bottom halves")


# ---------------------------------------------------------------------------------------
# Repair a random start
# ---------------------------------------------------------------------------------------

def _problem(seed: int = 0, d: int = 2):
    rng = np.random.default_rng(seed)
    return 0.3 * rng.standard_normal((2, 2 * d, 2 * d))


@checker("keep excited")
def check_keep_excited(my_keep_excited) -> bool:
    """``my_keep_excited(W, V)`` -> copies with the five unexcited blocks zeroed (W12, V11, V21 kept)."""
    for seed, d in ((1, 2), (2, 3)):
        W, V = _problem(seed, d)
        W_in, V_in = W.copy(), V.copy()
        got = attempt(my_keep_excited, W_in, V_in)
        if not (np.array_equal(W_in, W) and np.array_equal(V_in, V)):
            raise AssertionError("the arguments were modified: work on copies")
        if not (isinstance(got, tuple) and len(got) == 2):
            raise AssertionError("return the pair (W, V)")
        W_ref, V_ref = from_blocks(to_blocks(W, V), d)
        shape = f"({2 * d}, {2 * d})"
        for name, M in zip("WV", got):
            if np.shape(M) != (2 * d, 2 * d):
                raise AssertionError(f"{name}: shape {np.shape(M)}; return the full {shape} matrix, not its blocks")
        W_t = np.zeros_like(W)
        W_t[d:, :d] = W[d:, :d]  # W21 kept instead of W12
        V_t = np.zeros_like(V)
        V_t[:d, :d], V_t[:d, d:] = V[:d, :d], V[:d, d:]  # V12 kept instead of V21
        V_no11 = V_ref.copy()
        V_no11[:d, :d] = 0.0
        compare("W with excited blocks only", got[0], W_ref, alternatives=[
            ("the wrong block of W is kept: W12 is the top-right block (row block 1, column block 2)", W_t),
            ("W is returned unchanged: zero its unexcited blocks", W)])
        compare("V with excited blocks only", got[1], V_ref, alternatives=[
            ("the wrong block of V is kept: V21 is the bottom-left block (row block 2, column block 1)", V_t),
            ("V11 was zeroed too: it is excited (the one-step loss pulls it to zero, but it gets a gradient)", V_no11),
            ("V is returned unchanged: zero its unexcited blocks", V)])


# ---------------------------------------------------------------------------------------
# Build it: the training loop
# ---------------------------------------------------------------------------------------

def _loop(rng, W, V, n, eta, iterations, lr, batch, *, adam=True, bias_correction=True, sign=1.0, fresh=True,
          decay=True, sqrt=True, zero_start=False, shift=0):
    """The chapter's training loop with switches that make it wrong in the usual ways (the checker's alternatives).

    With every switch at its default this is :func:`ngdformer.train_one_step_layer` from
    the given start (tested against it). Returns ``(W, V, losses)``.
    """
    d = W.shape[-1] // 2
    params = [np.zeros_like(W), np.zeros_like(V)] if zero_start else [np.array(W, float), np.array(V, float)]
    m = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    losses = np.zeros(iterations)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(iterations):
        if fresh or t == 0:
            Z, target = one_step_batch(rng, batch, n, d, eta, 1.0 / np.sqrt(d))
        losses[t], dW, dV = one_step_loss(params[0], params[1], Z, target)
        lr_t = cosine_lr(lr, t + shift, iterations) if decay else lr
        for k, g in enumerate((dW, dV)):
            if not adam:
                params[k] = params[k] - sign * lr_t * g
                continue
            m[k] = beta1 * m[k] + (1 - beta1) * g
            s[k] = beta2 * s[k] + (1 - beta2) * g * g
            m_hat, s_hat = m[k], s[k]
            if bias_correction:
                m_hat, s_hat = m_hat / (1 - beta1 ** (t + 1)), s_hat / (1 - beta2 ** (t + 1))
            root = np.sqrt(s_hat) if sqrt else s_hat
            params[k] = params[k] - sign * lr_t * m_hat / (root + eps)
    return params[0], params[1], losses


#: The usual mistakes, as switches of :func:`_loop`, each with the message that names it.
MISTAKES = (
    ("Adam without bias correction: the first steps have the wrong size (divide each moment by "
     "its correction for the step count)", dict(bias_correction=False)),
    ("the update goes uphill: the loss grows (a sign error in the step)", dict(sign=-1.0)),
    ("the same batch is reused every iteration: draw a fresh batch inside the loop", dict(fresh=False)),
    ("the learning rate is never decayed: the recipe lowers it to 0 along a cosine", dict(decay=False)),
    ("the learning-rate schedule is one iteration late or early: the first iteration uses lr itself",
     dict(shift=1)),
    ("this is plain gradient descent, not Adam: keep the two moment estimates", dict(adam=False)),
    ("this is gradient ascent without Adam: a sign error, and no moment estimates", dict(adam=False, sign=-1.0)),
    ("Adam's denominator is not the square root of the second moment", dict(sqrt=False)),
    ("the run ignores the W, V passed in and starts from zeros", dict(zero_start=True)),
)


def _replay_case(seed: int, n: int, d: int, batch: int, iterations: int, eta: float, lr: float, init: str):
    """Fresh generator and start for one replay; the reference consumes the generator the same way."""
    rng = np.random.default_rng(seed)
    W0, V0 = init_weights(rng, d, init)
    return rng, W0, V0, (n, eta, iterations, lr, batch)


def _unpack(got, d: int, iterations: int):
    """Check the result is (W, V, losses) of the right shapes and finite; return them as arrays."""
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        raise AssertionError("return the triple (W, V, losses)")
    W, V, losses = (np.asarray(a, dtype=float) for a in got)
    for name, M in (("W", W), ("V", V)):
        if M.shape != (2 * d, 2 * d):
            raise AssertionError(f"{name}: shape {M.shape}; return the full ({2 * d}, {2 * d}) matrix (D = 2d)")
    if losses.shape != (iterations,):
        raise AssertionError(f"losses: shape {losses.shape}; return one loss per iteration, shape ({iterations},)")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(V)) and np.all(np.isfinite(losses))):
        raise AssertionError("NaN or inf after training: a division by zero in Adam's bias correction (does the "
                             "step count start at 1?) or a step that blew up")
    return W, V, losses


def _replay(my_training_loop, seed, n, d, batch, iterations, eta=0.5, lr=0.02, init="zeros"):
    """Run the student's loop and the reference on the same stream; compare with the named mistakes."""
    rng, W0, V0, kw = _replay_case(seed, n, d, batch, iterations, eta, lr, init)
    W_in, V_in = W0.copy(), V0.copy()
    got = attempt(my_training_loop, rng, W_in, V_in, *kw)
    if not (np.array_equal(W_in, W0) and np.array_equal(V_in, V0)):
        raise AssertionError("the arguments W, V were modified in place: start from copies")
    W, V, losses = _unpack(got, d, iterations)
    W_ref, V_ref, hist = train_one_step_layer(np.random.default_rng(seed), n=n, d=d, eta=eta, iterations=iterations,
                                              lr=lr, batch=batch, init=init, quiet=True)
    wrong = []
    with np.errstate(all="ignore"):  # some wrong updates overflow; they then match nothing
        for message, switches in MISTAKES:
            rng_w, W0_w, V0_w, kw_w = _replay_case(seed, n, d, batch, iterations, eta, lr, init)
            wrong.append((message, _loop(rng_w, W0_w, V0_w, *kw_w, **switches)))
    start = "zero" if init == "zeros" else init
    where = f"after {iterations} iterations (n = {n}, d = {d}, batch = {batch}, {start} start)"
    hint = ("draw each batch with one_step_batch(rng, batch, n, d, eta, sigma0=1/np.sqrt(d)), once per iteration "
            "and nothing else from rng, so that the checker can replay your run; then compare your Adam step "
            "with the chapter's equations")
    compare(f"the losses {where}", losses, hist["loss"], rtol=1e-6, atol=1e-12,
            alternatives=[(m, w[2]) for m, w in wrong], hint=hint)
    compare(f"W {where}", W, W_ref, rtol=1e-6, atol=1e-10, alternatives=[(m, w[0]) for m, w in wrong], hint=hint)
    compare(f"V {where}", V, V_ref, rtol=1e-6, atol=1e-10, alternatives=[(m, w[1]) for m, w in wrong], hint=hint)
    return W, V, losses


@checker("training loop")
def check_training_loop(my_training_loop) -> bool:
    """``my_training_loop(rng, W, V, n, eta, iterations, lr, batch)`` -> ``(W, V, losses)`` after training.

    Checks, in order: determinism from ``rng`` (two runs from generators of one seed
    agree), that ``W, V`` are not modified, short replays against the package's loop on
    the same random stream (zero start, then a random start, shapes with B != D != N != n)
    with the usual mistakes named, and finally the recipe's full run at n = 20, d = 5,
    whose relative distance to (W*, V*) must be below :data:`TRAINING_BOUND`.
    """
    runs = []
    for _ in range(2):
        rng, W0, V0, kw = _replay_case(11, 7, 3, 4, 6, 0.5, 0.02, "zeros")
        runs.append(_unpack(attempt(my_training_loop, rng, W0, V0, *kw), 3, 6))
    if not all(np.array_equal(a, b) for a, b in zip(*runs)):
        raise AssertionError("two runs from generators with the same seed differ: draw every random number from "
                             "`rng` (no np.random.* functions, no new generator)")
    _replay(my_training_loop, 11, n=7, d=3, batch=4, iterations=6)
    _replay(my_training_loop, 12, n=9, d=2, batch=3, iterations=5, eta=1.0, lr=0.05, init="random")
    run = TRAINING_RUN
    d = run["d"]
    rng = np.random.default_rng(TRAINING_SEED)
    W0, V0 = np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    args = (run["n"], run["eta"], run["iterations"], run["lr"], run["batch"])
    W, V, losses = _unpack(attempt(my_training_loop, rng, W0, V0, *args), d, run["iterations"])
    if losses[-20:].mean() > losses[:5].mean():
        raise AssertionError("the loss grows over training: the update goes uphill (a sign error in the step)")
    dist = distance_to_construction(W, V, run["eta"])
    if not dist < TRAINING_BOUND:
        raise AssertionError(f"after the full run (n = 20, d = 5, 500 iterations) the relative distance to (W*, V*) "
                             f"is {dist:.1e}, above the bound {TRAINING_BOUND:.0e} that the reference stays under")
    return f"relative distance to (W*, V*) after {run['iterations']} iterations at n = 20, d = 5: {dist:.1e}"
