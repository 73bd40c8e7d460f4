"""Chapter 02 checkers: True on the package's answer, a named AssertionError on each usual mistake, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch02
from checker_contract import assert_checker_contract


# ---------------------------------------------------------------------------
# Exercise 1: the NGD step. Wrong answers a student writes, each a complete function.
# ---------------------------------------------------------------------------

def _margins(w, X, y):
    return y * np.einsum("...nd,...d->...n", X, w)


def _softmax(s, axis=-1):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _step(w, X, y, eta, p, signs=None):
    signs = y if signs is None else signs
    return w + eta * np.einsum("...n,...nd->...d", p * signs, X)


def ngd_plus_m(w, X, y, eta):
    return _step(w, X, y, eta, _softmax(_margins(w, X, y)))


def ngd_without_y(w, X, y, eta):
    return _step(w, X, y, eta, _softmax(-_margins(w, X, y)), signs=1.0)


def ngd_no_shift(w, X, y, eta):
    e = np.exp(-_margins(w, X, y))
    return _step(w, X, y, eta, e / e.sum(-1, keepdims=True))


def ngd_batch_axis(w, X, y, eta):
    return _step(w, X, y, eta, nf.softmax(-_margins(w, X, y)))  # nf.softmax's default axis is -2


def ngd_divided_by_mean(w, X, y, eta):
    e = np.exp(-_margins(w, X, y) - np.max(-_margins(w, X, y), axis=-1, keepdims=True))
    return _step(w, X, y, eta, e / e.mean(-1, keepdims=True))  # a sum of e_i y_i x_i over the mean of e


def ngd_update_only(w, X, y, eta):
    return nf.ngd_step(w, X, y, eta) - w


def ngd_in_place(w, X, y, eta):
    w += nf.ngd_step(w, X, y, eta) - w
    return w


def ngd_gd_step(w, X, y, eta):
    return nf.gd_step(w, X, y, eta, loss="exp")


def ngd_batched_only(w, X, y, eta):
    return _step(w, X, y, eta, _softmax(-np.einsum("bnd,bd->bn", X, w) * y))


def ngd_random_error(w, X, y, eta):
    return nf.ngd_step(w, X, y, eta) + 1e-3 * np.cos(np.arange(w.shape[-1]))


NGD_MISTAKES = {
    r"softmax of \+m": ngd_plus_m,
    r"labels y are missing": ngd_without_y,
    r"NaN or inf at margins of \+-1000.*shift": ngd_no_shift,
    r"normalised over the batch axis": ngd_batch_axis,
    r"n = 7 times too long": ngd_divided_by_mean,
    r"returned the update alone": ngd_update_only,
    r"changed its input w in place": ngd_in_place,
    r"plain gradient step": ngd_gd_step,
    r"raised ValueError.*one code path serves a batch and a single task": ngd_batched_only,
    r"gradient checker.*not minus the gradient of the log of the loss": ngd_random_error,
}


def test_ngd_step_checker():
    assert_checker_contract(ch02.check_ngd_step, nf.ngd_step, mistakes=NGD_MISTAKES)


# ---------------------------------------------------------------------------
# Exercise 2: the KKT residuals.
# ---------------------------------------------------------------------------

def _kkt(w, X, y, a, *, primal=None, stationarity=None, slackness=None, gap=None, axis=-1):
    """nf.kkt_residuals with one residual replaced by a wrong version."""
    out = dict(nf.kkt_residuals(w, X, y, a))
    m = _margins(w, X, y)
    u = np.einsum("...n,...nd->...d", a * y, X)
    nw = np.linalg.norm(w, axis=-1)
    if primal == "unclipped":
        out["primal"] = 1.0 - m.min(-1)
    if primal == "mean":
        out["primal"] = np.maximum(0.0, 1.0 - m.mean(-1))
    if stationarity == "no y":
        out["stationarity"] = np.linalg.norm(w - np.einsum("...n,...nd->...d", a, X), axis=-1) / nw
    if stationarity == "absolute":
        out["stationarity"] = np.linalg.norm(w - u, axis=-1)
    if slackness == "no abs":
        out["slackness"] = np.max(a * (m - 1.0), axis=-1) / a.sum(-1)
    if gap == "signed":
        out["gap"] = (nw ** 2 - a.sum(-1)) / (0.5 * nw ** 2)
    if axis == 0:
        out["primal"] = np.maximum(0.0, 1.0 - m.min(0))
    return out


KKT_MISTAKES = {
    r"primal: .*clip at zero": lambda *args: _kkt(*args, primal="unclipped"),
    r"primal: .*smallest margin, not the mean": lambda *args: _kkt(*args, primal="mean"),
    r"stationarity: the labels y are missing": lambda *args: _kkt(*args, stationarity="no y"),
    r"stationarity: it is relative": lambda *args: _kkt(*args, stationarity="absolute"),
    r"slackness: take absolute values": lambda *args: _kkt(*args, slackness="no abs"),
    r"gap: take the absolute value": lambda *args: _kkt(*args, gap="signed"),
    r"primal: one value per task: reduce over the examples": lambda *args: _kkt(*args, axis=0),
    r"lacks the keys \['gap'\]": lambda *args: {k: v for k, v in nf.kkt_residuals(*args).items() if k != "gap"},
    r"return a dict": lambda *args: tuple(nf.kkt_residuals(*args).values()),
}


def test_kkt_residuals_checker():
    assert_checker_contract(ch02.check_kkt_residuals, nf.kkt_residuals, mistakes=KKT_MISTAKES)


def test_kkt_pairs_break_what_they_say():
    """The checker's wrong pairs really break the certificate (else a sloppy residual could pass on them)."""
    X, y, pairs = ch02._kkt_pairs(0, (4,), 9, 3)
    res = {what: nf.kkt_residuals(w, X, y, a) for what, w, a in pairs}
    certified, scaled, perturbed, negative, support, rand = res.values()
    assert max(v.max() for v in certified.values()) < 1e-9
    assert np.all(scaled["primal"] == 0) and np.all(scaled["stationarity"] > 0.1)
    assert np.all(perturbed["primal"] > 0)
    assert np.all(negative["dual"] > 0.05)
    assert np.all(support["stationarity"] < 1e-12) and np.all(support["slackness"] > 1e-3)
    assert np.all(rand["dual"] == 0) and np.all(rand["gap"] > 0)


# ---------------------------------------------------------------------------
# Exercise 3: gamma_mm from the dual variables.
# ---------------------------------------------------------------------------

def gamma_right(a):
    return 1.0 / np.sqrt(np.sum(a, axis=-1))


GAMMA_MISTAKES = {
    r"square root is missing": lambda a: 1.0 / np.sum(a, axis=-1),
    r"inverse of the margin": lambda a: np.sqrt(np.sum(a, axis=-1)),
    r"a mean over the examples": lambda a: 1.0 / np.sqrt(np.mean(a, axis=-1)),
    r"Euclidean norm of a": lambda a: 1.0 / np.linalg.norm(a, axis=-1),
    r"one value per task": lambda a: 1.0 / np.sqrt(np.sum(a, axis=0)),
    r"changed its input a in place": lambda a: 1.0 / np.sqrt(np.cumsum(a, axis=-1, out=a)[..., -1]),
}


def test_gamma_from_dual_checker():
    assert_checker_contract(ch02.check_gamma_from_dual, gamma_right, mistakes=GAMMA_MISTAKES)


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    "my_ngd_step": "import ngdformer as nf\n\n\ndef my_ngd_step(w, X, y, eta):\n"
                   "    return nf.ngd_step(w, X, y, eta)  # ngdformer/solvers.py\n",
    "my_kkt_residuals": "import ngdformer as nf\n\n\ndef my_kkt_residuals(w, X, y, a):\n"
                        "    return nf.kkt_residuals(w, X, y, a)  # ngdformer/solvers.py\n",
    "my_gamma_from_dual": "import numpy as np\n\n\ndef my_gamma_from_dual(a):\n"
                          "    return 1.0 / np.sqrt(np.sum(a, axis=-1))  # zero duality gap: |w_mm|^2 = sum_i a_i\n",
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch02, "check_" + name[3:])
    assert check(namespace[name]) is True
