"""Chapter 06 checkers: True on the package's answer, a named AssertionError on each usual mistake, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from checker_contract import assert_checker_contract
from ngdformer.exercises import ch06
from ngdformer.optim import cosine_lr
from ngdformer.training import EXCITED, from_blocks, one_step_batch, to_blocks

ALL_BLOCKS = {"W11", "W12", "W21", "W22", "V11", "V12", "V21", "V22"}


# ---------------------------------------------------------------------------------------
# which blocks get zero gradient
# ---------------------------------------------------------------------------------------

def _unexcited():
    return ALL_BLOCKS - set(EXCITED)


def test_check_unexcited_blocks():
    assert_checker_contract(ch06.check_unexcited_blocks, _unexcited, mistakes={
        r"V11 is excited": lambda: _unexcited() | {"V11"},
        r"row and column indices are swapped": lambda: {"W11", "W12", "W22", "V21", "V22"},
        r"\['W12'\] excited: the scores": lambda: _unexcited() | {"W12"},
        r"missing \['V12', 'V22'\]": lambda: {"W11", "W21", "W22"},
        r"unknown block names": lambda: {"W13"},
        r"not one string": lambda: "W11",
    })


def test_check_unexcited_blocks_accepts_lower_case_lists():
    assert ch06.check_unexcited_blocks(lambda: ["w11", "w21", "w22", "v12", "v22"]) is True


# ---------------------------------------------------------------------------------------
# repair a random start
# ---------------------------------------------------------------------------------------

def _keep_excited(W, V):
    return from_blocks(to_blocks(W, V), W.shape[0] // 2)


def _keep_excited_in_place(W, V):
    d = W.shape[0] // 2
    W[:, :d] = 0
    W[d:, :] = 0
    V[:, d:] = 0
    return W, V


def _keep_transposed_blocks(W, V):
    d = W.shape[0] // 2
    W2, V2 = np.zeros_like(W), np.zeros_like(V)
    W2[d:, :d] = W[d:, :d]
    V2[:d, :d], V2[:d, d:] = V[:d, :d], V[:d, d:]
    return W2, V2


def _drop_V11(W, V):
    W2, V2 = _keep_excited(W, V)
    V2[: W.shape[0] // 2, : W.shape[0] // 2] = 0
    return W2, V2


def test_check_keep_excited():
    assert_checker_contract(ch06.check_keep_excited, _keep_excited, mistakes={
        r"arguments were modified": _keep_excited_in_place,
        r"wrong block of W": _keep_transposed_blocks,
        r"V11 was zeroed too": _drop_V11,
        r"W is returned unchanged": lambda W, V: (W.copy(), V.copy()),
        r"return the full \(4, 4\) matrix": lambda W, V: to_blocks(W, V)[:2],
    })


# ---------------------------------------------------------------------------------------
# build it: the training loop
# ---------------------------------------------------------------------------------------

def _package_loop(rng, W, V, n, eta, iterations, lr, batch):
    """The answer key: the package's batch, loss, Adam and schedule in the chapter's loop."""
    d = W.shape[0] // 2
    params, state = (W, V), nf.adam_init((W, V))
    losses = np.zeros(iterations)
    for t in range(iterations):
        Z, target = one_step_batch(rng, batch, n, d, eta, sigma0=1 / np.sqrt(d))
        losses[t], dW, dV = nf.one_step_loss(*params, Z, target)
        params, state = nf.adam_update(params, (dW, dV), state, lr=cosine_lr(lr, t, iterations))
    return params[0], params[1], losses


def _hand_loop(rng, W, V, n, eta, iterations, lr, batch, *, correct=True, sign=1.0, fresh=True, decay=True,
               in_place=False, adam=True, sigma0=None, global_random=False):
    """A student's hand-written loop (written apart from the checker's), with one mistake per switch."""
    d = W.shape[0] // 2
    sigma0 = 1 / np.sqrt(d) if sigma0 is None else sigma0
    if not in_place:
        W, V = W.copy(), V.copy()
    mW, mV, sW, sV = (np.zeros_like(W) for _ in range(4))
    losses = []
    for t in range(1, iterations + 1):
        if fresh or t == 1:
            source = np.random.default_rng() if global_random else rng
            Z, target = one_step_batch(source, batch, n, d, eta, sigma0=sigma0)
        J, dW, dV = nf.one_step_loss(W, V, Z, target)
        losses.append(J)
        step = cosine_lr(lr, t - 1, iterations) if decay else lr
        if not adam:
            W -= sign * step * dW
            V -= sign * step * dV
            continue
        mW, mV = 0.9 * mW + 0.1 * dW, 0.9 * mV + 0.1 * dV
        sW, sV = 0.999 * sW + 0.001 * dW ** 2, 0.999 * sV + 0.001 * dV ** 2
        c1, c2 = (1 - 0.9 ** t, 1 - 0.999 ** t) if correct else (1.0, 1.0)
        W -= sign * step * (mW / c1) / (np.sqrt(sW / c2) + 1e-8)
        V -= sign * step * (mV / c1) / (np.sqrt(sV / c2) + 1e-8)
    return W, V, losses


def _with(**switches):
    return lambda *args: _hand_loop(*args, **switches)


def test_hand_written_loop_passes():
    assert ch06.check_training_loop(_hand_loop) is True


def test_check_training_loop():
    assert_checker_contract(ch06.check_training_loop, _package_loop, mistakes={
        r"without bias correction": _with(correct=False),
        r"goes uphill": _with(sign=-1.0),
        r"same batch is reused": _with(fresh=False),
        r"never decayed": _with(decay=False),
        r"plain gradient descent": _with(adam=False),
        r"modified in place": _with(in_place=True),
        r"same seed differ": _with(global_random=True),
        r"replay your run": _with(sigma0=1.0),
        r"ignores the W, V passed in": lambda rng, W, V, *a: _package_loop(rng, 0 * W, 0 * V, *a),
        r"triple": lambda *args: _package_loop(*args)[:2],
    })


def test_loop_switches_off_is_the_package_loop():
    """The checker's alternatives come from a loop that, with no mistake switched on, is the package's."""
    for seed, init in ((0, "zeros"), (1, "random")):
        rng, W0, V0, kw = ch06._replay_case(seed, 7, 3, 4, 8, 0.5, 0.02, init)
        W, V, losses = ch06._loop(rng, W0, V0, *kw)
        W_ref, V_ref, hist = nf.train_one_step_layer(np.random.default_rng(seed), n=7, d=3, eta=0.5, iterations=8,
                                                     lr=0.02, batch=4, init=init, quiet=True)
        np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(V, V_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(losses, hist["loss"], rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_training_bound_holds_for_the_reference_on_other_seeds(seed):
    """The package's loop stays 5 times under the full run's bound whatever the seed (worst of 40 seeds: 4.7e-6)."""
    W, V, hist = nf.train_one_step_layer(np.random.default_rng(100 + seed), quiet=True, **ch06.TRAINING_RUN)
    assert hist["dist"][-1] < ch06.TRAINING_BOUND / 5


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    "my_unexcited_blocks": (
        "from ngdformer.training import EXCITED\n"
        "def my_unexcited_blocks():\n"
        "    return {'W11', 'W12', 'W21', 'W22', 'V11', 'V12', 'V21', 'V22'} - set(EXCITED)\n"),
    "my_keep_excited": (
        "from ngdformer.training import from_blocks, to_blocks\n"
        "def my_keep_excited(W, V):\n"
        "    return from_blocks(to_blocks(W, V), W.shape[0] // 2)\n"),
    "my_training_loop": (
        "import numpy as np\n"
        "import ngdformer as nf\n"
        "from ngdformer.optim import cosine_lr\n"
        "from ngdformer.training import one_step_batch\n"
        "def my_training_loop(rng, W, V, n, eta, iterations, lr, batch):\n"
        "    d = W.shape[0] // 2\n"
        "    params, state = (W, V), nf.adam_init((W, V))\n"
        "    losses = np.zeros(iterations)\n"
        "    for t in range(iterations):\n"
        "        Z, target = one_step_batch(rng, batch, n, d, eta, sigma0=1 / np.sqrt(d))\n"
        "        losses[t], dW, dV = nf.one_step_loss(*params, Z, target)\n"
        "        params, state = nf.adam_update(params, (dW, dV), state, lr=cosine_lr(lr, t, iterations))\n"
        "    return params[0], params[1], losses\n"),
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch06, "check_" + name[3:])
    assert check(namespace[name]) is True
