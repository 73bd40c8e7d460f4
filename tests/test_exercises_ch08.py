"""Chapter 08 checkers: the answer key passes, each named mistake is rejected by name, the stub is not attempted."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch08
from ngdformer.experiments.ch08 import structured_iterate
from ngdformer.looped_training import looped_loss
from checker_contract import assert_checker_contract


# --- backpropagation through the loops: wrong answers ------------------------------------------------------

def _only_last(dout, caches):
    g = dout
    for k, cache in enumerate(reversed(caches)):
        g, gW, gV = nf.attention_backward(g, cache)
        if k == 0:
            dW, dV = gW, gV  # the last application's gradient, never added to
    return g, dW, dV


def _overwritten(dout, caches):
    g = dout
    for cache in reversed(caches):
        g, dW, dV = nf.attention_backward(g, cache)  # = instead of +=
    return g, dW, dV


def _forward_order(dout, caches):
    g, dW, dV = dout, 0.0, 0.0
    for cache in caches:
        g, gW, gV = nf.attention_backward(g, cache)
        dW, dV = dW + gW, dV + gV
    return g, dW, dV


def _not_propagated(dout, caches):
    dW, dV = 0.0, 0.0
    for cache in reversed(caches):
        g, gW, gV = nf.attention_backward(dout, cache)  # always the same dout
        dW, dV = dW + gW, dV + gV
    return g, dW, dV


def _averaged(dout, caches):
    dZ, dW, dV = nf.looped_backward(dout, caches)
    return dZ, dW / len(caches), dV / len(caches)


def _reversed_in_place(dout, caches):
    caches.reverse()
    g, dW, dV = dout, 0.0, 0.0
    for cache in caches:
        g, gW, gV = nf.attention_backward(g, cache)
        dW, dV = dW + gW, dV + gV
    return g, dW, dV


def _tokens_as_rows(dout, caches):
    dZ, dW, dV = nf.looped_backward(dout, caches)
    return np.swapaxes(dZ, -1, -2), dW, dV


def _dZ_is_dout(dout, caches):
    return (dout, *nf.looped_backward(dout, caches)[1:])


def test_looped_backward_checker():
    assert_checker_contract(ch08.check_looped_backward, nf.looped_backward, mistakes={
        r"only the last application's gradient": _only_last,
        r"only one application's gradient survives.*\+=": _overwritten,
        r"undone in forward order": _forward_order,
        r"dout is not propagated between applications": _not_propagated,
        r"averaged.*sum": _averaged,
        r"caches was modified": _reversed_in_place,
        r"tokens are columns: expected shape \(3, 4, 7\)": _tokens_as_rows,
        r"dZ is dout unchanged": _dZ_is_dout,
        r"return the tuple \(dZ, dW, dV\)": lambda dout, caches: nf.looped_backward(dout, caches)[1:],
    })


# --- the end loss: wrong answers ---------------------------------------------------------------------------

def _right_loss(W, V, Z, depth, w_star):
    return looped_loss(W, V, Z, depth, "w_star", w_star=w_star)


def _loss_with(W, V, Z, depth, w_star, *, rows="bottom", col=-1, seed_rows=None, scale=1.0, grad_scale=1.0,
               sign=1.0):
    """The end loss written out, with one knob per usual mistake."""
    B, D, N = Z.shape
    d = D // 2
    pick = {"bottom": slice(d, None), "top": slice(None, d)}
    ZL, caches = nf.looped_forward_with_cache(Z, W, V, N - 1, depth)
    r = ZL[:, pick[rows], col] - w_star  # (B, d)
    J = scale * 0.5 * float(np.sum(r * r)) / B
    dZL = np.zeros_like(ZL)
    dZL[:, pick[seed_rows or rows], col] = sign * grad_scale * r / B
    _, dW, dV = nf.looped_backward(dZL, caches)
    return J, dW, dV


def test_looped_loss_checker():
    B = 3  # the checker's first case
    assert_checker_contract(ch08.check_looped_loss, _right_loss, mistakes={
        r"J and its gradient miss the 1/B": lambda *a: _loss_with(*a, scale=B, grad_scale=B),
        r"gradient misses the 1/B": lambda *a: _loss_with(*a, grad_scale=B),
        r"factor 1/2 of the loss is missing": lambda *a: _loss_with(*a, scale=2, grad_scale=2),
        r"sign is flipped": lambda *a: _loss_with(*a, sign=-1.0),
        r"read from the top half of the query column": lambda *a: _loss_with(*a, rows="top"),
        r"read from the first column": lambda *a: _loss_with(*a, col=0),
        r"seeded in the top half of the query column": lambda *a: _loss_with(*a, seed_rows="top"),
        r"argument was modified": lambda W, V, Z, L, ws: _right_loss(W, V, Z.__imul__(1.5), L, ws),
    })


# --- the structured layer's iterate: wrong answers ---------------------------------------------------------

def test_structured_iterate_checker():
    assert_checker_contract(ch08.check_structured_iterate, structured_iterate, mistakes={
        r"start is not rescaled": lambda X, y, w0, c1, c2, L: nf.ngd(w0, X, y, c1 * c2, L)[-1] / c1,
        r"still the rescaled iterate": lambda X, y, w0, c1, c2, L: nf.ngd(c1 * w0, X, y, c1 * c2, L)[-1],
        r"the NGD step is c2 alone": lambda X, y, w0, c1, c2, L: nf.ngd(c1 * w0, X, y, c2, L)[-1] / c1,
        r"whole trajectory": lambda X, y, w0, c1, c2, L: nf.ngd(c1 * w0, X, y, c1 * c2, L) / c1,
        r"start w0 is ignored": lambda X, y, w0, c1, c2, L: nf.ngd(0 * w0, X, y, c1 * c2, L)[-1] / c1,
        r"argument was modified": lambda X, y, w0, c1, c2, L: structured_iterate(X, y, w0.__imul__(c1), 1, c1 * c2, L),
    })


def test_mistakes_are_named_not_answered():
    """No message gives the answer away: none prints an array or a formula for the answer."""
    for fn in (_only_last, _forward_order, _not_propagated):
        with pytest.raises(AssertionError) as info:
            ch08.check_looped_backward(fn)
        assert "[" not in str(info.value) and "=" not in str(info.value).replace("+=", "")


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    "my_looped_backward": (
        "import ngdformer as nf\n"
        "def my_looped_backward(dout, caches):\n"
        "    return nf.looped_backward(dout, caches)  # answer key: ngdformer/construction.py\n"),
    "my_looped_loss": (
        "from ngdformer.looped_training import looped_loss\n"
        "def my_looped_loss(W, V, Z, depth, w_star):\n"
        "    # answer key: ngdformer/looped_training.py\n"
        "    return looped_loss(W, V, Z, depth, 'w_star', w_star=w_star)\n"),
    "my_structured_iterate": (
        "from ngdformer.experiments.ch08 import structured_iterate\n"
        "def my_structured_iterate(X, y, w0, c1, c2, depth):\n"
        "    return structured_iterate(X, y, w0, c1, c2, depth)  # answer key: ngdformer/experiments/ch08.py\n"),
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch08, "check_" + name[3:])
    assert check(namespace[name]) is True
