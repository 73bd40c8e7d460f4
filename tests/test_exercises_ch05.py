"""Chapter 05 checkers: True on the reference, a named mistake for each usual wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch05
from checker_contract import assert_checker_contract


# Wrong backward passes through a stack, written as a student would.
def stack_forward_order(dout, caches):
    grads = []
    for cache in caches:
        dout, dW, dV = nf.attention_backward(dout, cache)
        grads.append((dW, dV))
    return dout, grads


def stack_grads_reversed(dout, caches):
    grads = []
    for cache in reversed(caches):
        dout, dW, dV = nf.attention_backward(dout, cache)
        grads.append((dW, dV))
    return dout, grads


def stack_not_propagated(dout, caches):
    grads, dZ = [], None
    for cache in reversed(caches):
        dZ, dW, dV = nf.attention_backward(dout, cache)
        grads.append((dW, dV))
    return dZ, grads[::-1]


def stack_dout_returned(dout, caches):
    return dout, nf.stack_backward(dout, caches)[1]


def stack_swapped(dout, caches):
    dZ, grads = nf.stack_backward(dout, caches)
    return dZ, [(dV, dW) for dW, dV in grads]


def stack_tokens_as_rows(dout, caches):
    dZ, grads = nf.stack_backward(dout, caches)
    return np.swapaxes(dZ, -1, -2), grads


def stack_in_place(dout, caches):
    dZ, grads = nf.stack_backward(dout, caches)
    dout *= 1.0 + 1e-3
    return dZ, grads


def stack_unpacked(dout, caches):
    dZ, grads = nf.stack_backward(dout, caches)
    return dZ, [dW for dW, _ in grads]


def test_stack_backward():
    assert_checker_contract(ch05.check_stack_backward, nf.stack_backward, mistakes={
        r"undone in forward order": stack_forward_order,
        r"grads list is reversed": stack_grads_reversed,
        r"fed the original dout": stack_not_propagated,
        r"incoming dout unchanged": stack_dout_returned,
        r"swapped": stack_swapped,
        r"tokens are columns: expected shape \(5, 4, 7\)": stack_tokens_as_rows,
        r"changed its input": stack_in_place,
        r"one \(dW, dV\) pair per layer": stack_unpacked,
    })


# Wrong backward passes through the loops.
def _per_application(dout, caches):
    return nf.stack_backward(dout, caches)


def looped_one_application(dout, caches):
    dZ, grads = _per_application(dout, caches)
    return dZ, grads[-1][0], grads[-1][1]


def looped_first_application(dout, caches):
    dZ, grads = _per_application(dout, caches)
    return dZ, grads[0][0], grads[0][1]


def looped_averaged(dout, caches):
    dZ, dW, dV = nf.looped_backward(dout, caches)
    return dZ, dW / len(caches), dV / len(caches)


def looped_not_propagated(dout, caches):
    dW = dV = 0.0
    dZ = dout
    for cache in reversed(caches):
        dZ, gW, gV = nf.attention_backward(dout, cache)
        dW, dV = dW + gW, dV + gV
    return dZ, dW, dV


def looped_forward_order(dout, caches):
    dW = dV = 0.0
    for cache in caches:
        dout, gW, gV = nf.attention_backward(dout, cache)
        dW, dV = dW + gW, dV + gV
    return dout, dW, dV


def looped_per_application_list(dout, caches):
    dZ, grads = _per_application(dout, caches)
    return dZ, np.stack([g[0] for g in grads]), np.stack([g[1] for g in grads])


def looped_batch_mean(dout, caches):
    dZ, dW, dV = nf.looped_backward(dout, caches)
    B = dout.shape[0] if dout.ndim == 3 else 1
    return dZ, dW / B, dV / B


def looped_no_zero_start(dout, caches):
    dZ, grads = _per_application(dout, caches)
    return dZ, sum(g[0] for g in grads), sum(g[1] for g in grads)  # depth 0: the integer 0


def looped_crashes_at_depth_0(dout, caches):
    D = caches[0].W.shape[0]
    return nf.looped_backward(dout, caches) if D else None


def test_looped_backward():
    assert_checker_contract(ch05.check_looped_backward, nf.looped_backward, mistakes={
        r"only one application's gradient": looped_one_application,
        r"(?s)only one application's gradient.*": looped_first_application,
        r"averaged over the applications": looped_averaged,
        r"fed the original dout": looped_not_propagated,
        r"undone in forward order": looped_forward_order,
        r"one entry per application": looped_per_application_list,
        r"divided by the batch size": looped_batch_mean,
        r"depth 0.*shape \(D, D\)": looped_no_zero_start,
        r"depth 0 \(caches == \[\]\): your function raised IndexError": looped_crashes_at_depth_0,
    })


def test_separator_segment():
    def along_w(w, r):
        return r * np.stack([w, -w]) / np.linalg.norm(w)

    def unnormalized(w, r):
        return r * np.stack([[-w[1], w[0]], [w[1], -w[0]]])

    def same_side(w, r):
        p = r * np.array([-w[1], w[0]]) / np.linalg.norm(w)
        return np.stack([p, p])

    def wrong_shape(w, r):
        return nf.separator_segment(w, r).ravel()

    assert_checker_contract(ch05.check_separator_segment, nf.separator_segment, mistakes={
        r"along w itself": along_w,
        r"distance `radius`.*normalized": unnormalized,
        r"opposite sides": same_side,
        r"expected \(2, 2\)": wrong_shape,
    })


def test_norm_bound():
    def right(X, eta, L):
        return eta * L * np.linalg.norm(X, axis=-1).max()

    assert_checker_contract(ch05.check_norm_bound, right, mistakes={
        r"grow with the depth": lambda X, eta, L: eta * np.linalg.norm(X, axis=-1).max(),
        r"scaled by the step size": lambda X, eta, L: L * np.linalg.norm(X, axis=-1).max(),
        r"summed the norms": lambda X, eta, L: eta * L * np.linalg.norm(X, axis=-1).sum(),
        r"mean norm is not a bound": lambda X, eta, L: eta * L * np.linalg.norm(X, axis=-1).mean(),
        r"wrong axis": lambda X, eta, L: eta * L * np.linalg.norm(X, axis=0).max(),
        r"squared norms": lambda X, eta, L: eta * L * (np.linalg.norm(X, axis=-1) ** 2).max(),
        r"not a bound": lambda X, eta, L: 1e-3,
        r"not the tightest": lambda X, eta, L: 2 * right(X, eta, L),
        r"one number": lambda X, eta, L: eta * L * np.linalg.norm(X, axis=-1),
    })


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_stack_backward': 'import ngdformer as nf\ndef my_stack_backward(dout, caches):\n    return nf.stack_backward(dout, caches)\n',
    'my_looped_backward': 'import ngdformer as nf\ndef my_looped_backward(dout, caches):\n    return nf.looped_backward(dout, caches)\n',
    'my_separator_segment': 'import ngdformer as nf\ndef my_separator_segment(w, radius):\n    return nf.separator_segment(w, radius)\n',
    'my_norm_bound': 'import numpy as np\ndef my_norm_bound(X, eta, L):\n    return eta * L * np.linalg.norm(X, axis=-1).max()\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch05, "check_" + name[3:])
    assert check(namespace[name]) is True
