"""Chapter 07 checkers: True on the reference, AssertionError naming the mistake on a wrong answer, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch07
from checker_contract import assert_checker_contract


def right_curve(W, V, X, y, w0, eta, depths):
    return nf.normalized_difference(nf.ood.transformer_iterates(W, V, X, y, w0, depths),
                                    nf.ngd(w0, X, y, eta, depths[-1])[depths])


def _traj(W, V, X, y, w0, depth, n_context=None):
    n = X.shape[-2] if n_context is None else n_context
    return nf.looped_trajectory(nf.embed(X, y, w0), W, V, n, depth)


def unnormalized(W, V, X, y, w0, eta, depths):
    u, v = _traj(W, V, X, y, w0, depths[-1])[depths], nf.ngd(w0, X, y, eta, depths[-1])[depths]
    return np.linalg.norm(u - v, axis=-1)


def off_by_one(W, V, X, y, w0, eta, depths):  # the layer applied t times against NGD after t + 1 steps
    u, v = _traj(W, V, X, y, w0, depths[-1]), nf.ngd(w0, X, y, eta, depths[-1] + 1)
    return nf.normalized_difference(u[depths], v[np.asarray(depths) + 1])


def layer_one_short(W, V, X, y, w0, eta, depths):  # range(t) loops written as t - 1 applications
    u, v = _traj(W, V, X, y, w0, depths[-1]), nf.ngd(w0, X, y, eta, depths[-1])
    return nf.normalized_difference(u[np.maximum(np.asarray(depths) - 1, 0)], v[depths])


def against_gd(W, V, X, y, w0, eta, depths):
    u, v = _traj(W, V, X, y, w0, depths[-1])[depths], nf.gd(w0, X, y, eta, depths[-1])[depths]
    return nf.normalized_difference(u, v)


def training_n(W, V, X, y, w0, eta, depths):  # n = 40 of the chapter's training distribution, whatever X holds
    u = _traj(W, V, X, y, w0, depths[-1], n_context=40)
    return nf.normalized_difference(u[depths], nf.ngd(w0, X, y, eta, depths[-1])[depths])


def fixed_eta(W, V, X, y, w0, eta, depths):  # the chapter's eta = 0.5 instead of the argument
    return right_curve(W, V, X, y, w0, 0.5, depths)


def transposed(W, V, X, y, w0, eta, depths):
    return right_curve(W, V, X, y, w0, eta, depths).T


def logistic_ngd(W, V, X, y, w0, eta, depths):
    u = _traj(W, V, X, y, w0, depths[-1])[depths]
    return nf.normalized_difference(u, nf.ngd(w0, X, y, eta, depths[-1], loss="logistic")[depths])


def mutates(W, V, X, y, w0, eta, depths):
    out = right_curve(W, V, X, y, w0, eta, depths)
    w0 *= 2.0
    return out


def tokens_as_rows(W, V, X, y, w0, eta, depths):
    Z = np.swapaxes(nf.embed(X, y, w0), -1, -2)  # (..., n + 1, 2d): the PyTorch layout
    u = nf.looped_trajectory(Z, W, V, X.shape[-2], depths[-1])
    return nf.normalized_difference(u[depths], nf.ngd(w0, X, y, eta, depths[-1])[depths])


def by_position(W, V, X, y, w0, eta, depths):
    K = len(depths)
    return nf.normalized_difference(_traj(W, V, X, y, w0, depths[-1])[:K], nf.ngd(w0, X, y, eta, depths[-1])[:K])


OOD_MISTAKES = {
    r"iterates themselves.*directions": unnormalized,
    r"off by one in depth": off_by_one,
    r"off by one in depth:": layer_one_short,
    r"GD, not NGD": against_gd,
    r"context of 40 points.*training distribution": training_n,
    r"another step size": fixed_eta,
    r"one row per depth": transposed,
    r"logistic loss": logistic_ngd,
    r"changed its input w0": mutates,
    r"tokens are columns": tokens_as_rows,
    r"at the depths in `depths`": by_position,
}


def test_check_ood_curve_contract():
    assert_checker_contract(ch07.check_ood_curve, right_curve, mistakes=OOD_MISTAKES)


STUDENT_SHIFTS = [nf.Shift("n = 20", n=20), nf.Shift("anisotropic, d = 10", cov=nf.ood.anisotropic_cov(10)),
                  nf.Shift("deep, far start", depth=60, sigma0=10.0), nf.Shift("noisy margin", margin=0.3, flip=0.2)]


@pytest.mark.parametrize("shift", STUDENT_SHIFTS)
def test_check_ood_curve_on_a_students_shift(shift, capsys):
    assert ch07.check_ood_curve(right_curve, shift=shift) is True
    assert repr(shift.name) in capsys.readouterr().out
    with pytest.raises(AssertionError, match="off by one"):
        ch07.check_ood_curve(off_by_one, shift=shift)


def test_training_n_on_a_smaller_shifted_context_is_named():
    with pytest.raises(AssertionError, match="context size must be that of the X"):
        ch07.check_ood_curve(lambda W, V, X, y, w0, eta, depths:
                             training_n(W, V, X[..., :30, :], y[..., :30], w0, eta, depths))


FIRST_LOOP_MISTAKES = {
    r"depth 0 is the input": lambda: 0,
    r"too early": lambda: 1,
    r"too late.*bottom halves": lambda: 3,
    r"an int": lambda: 2.5,
}


def test_check_first_affected_loop_contract():
    assert_checker_contract(ch07.check_first_affected_loop, lambda: 2, mistakes=FIRST_LOOP_MISTAKES)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_ood_curve': ('import numpy as np\nimport ngdformer as nf\n'
                     'def my_ood_curve(W, V, X, y, w0, eta, depths):\n'
                     '    u = nf.ood.transformer_iterates(W, V, X, y, w0, depths)      # (K, ..., d)\n'
                     '    v = nf.ngd(w0, X, y, eta, depths[-1])[depths]                # (K, ..., d)\n'
                     '    return nf.normalized_difference(u, v)\n'),
    'my_first_affected_loop': 'import numpy as np\nimport ngdformer as nf\ndef my_first_affected_loop():\n    return 2\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch07, "check_" + name[3:])
    assert check(namespace[name]) is True
