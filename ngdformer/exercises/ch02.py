"""Checkers for chapter 02, normalized gradient descent (see ``ngdformer.exercises`` for the protocol).

The answer keys are :func:`ngdformer.solvers.ngd_step` (with
:func:`ngdformer.losses.ngd_coefficients`) and :func:`ngdformer.solvers.kkt_residuals`, both
in ``ngdformer/solvers.py``. Each checker runs the student's function on random tasks, one
batch of B tasks and one single task, with B, n and d all different so that a transposed
layout cannot pass by its shape, and names the usual mistakes by computing them.
"""

from __future__ import annotations

import numpy as np

from ..attention import softmax
from ..gradcheck import check_directions, gradient_errors
from ..losses import exp_log_loss
from ..solvers import gd_step, kkt_residuals, max_margin_dual, ngd_step, normalized_margin
from ..tasks import sample_tasks
from . import attempt, checker, compare

_AXIS = "one value per task: reduce over the examples (the last axis of a, y and the margins), not over the batch"


_SINGLE = ("Index axes from the end (`...` in np.einsum, or `@`) so that one code path serves a batch and a "
           "single task")


def _call(fn, what: str, *args, hint: str = ""):
    """Call a student's function; its exceptions become an AssertionError that says on which input.

    Floating-point warnings are silenced: a NaN or inf in the result is reported by the comparison.
    ``hint`` is added to the message (for a single task: index axes from the end).
    """
    try:
        with np.errstate(all="ignore"):
            return attempt(fn, *args)
    except AssertionError:
        raise
    except Exception as exc:
        if isinstance(exc, NotImplementedError) or type(exc).__name__ == "NotAttempted":
            raise
        raise AssertionError(f"on {what} your function raised {type(exc).__name__}: {exc}"
                             + (f". {hint}" if hint else "")) from None


def _unchanged(name: str, before, after) -> None:
    if not np.array_equal(before, after):
        raise AssertionError(f"your function changed its input {name} in place (a `+=` or an assignment into it?): "
                             "compute a new array instead")


def _tasks(seed: int, batch: tuple, n: int, d: int):
    """X (*batch, n, d), y (*batch, n) with margin 0.1, and a random w (*batch, d) with margins of a few units."""
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, int(np.prod(batch, dtype=int)), n, d, margin=0.1)
    w = rng.standard_normal((X.shape[0], d))
    return X.reshape(batch + (n, d)), y.reshape(batch + (n,)), w.reshape(batch + (d,))


# ---------------------------------------------------------------------------
# Exercise 1: one NGD step on the exponential loss
# ---------------------------------------------------------------------------


def _ngd_mistakes(w, X, y, eta: float) -> list:
    """The usual wrong NGD steps on (w, X, y), each with the message that names it."""
    n = X.shape[-2]
    m = y * np.einsum("...nd,...d->...n", X, w)  # (..., n) margins
    p = softmax(-m, axis=-1)  # (..., n)
    step = np.einsum("...n,...nd->...d", p * y, X)  # (..., d), the NGD direction

    def weighted(c, signs=y):
        return w + eta * np.einsum("...n,...nd->...d", c * signs, X)

    mistakes = [
        ("the weights are a softmax of +m: NGD puts the most weight on the examples with the SMALLEST margins",
         weighted(softmax(m, axis=-1))),
        ("the labels y are missing from the weighted sum of the examples", weighted(p, 1.0)),
        ("the margins are missing the labels y", weighted(softmax(-np.einsum("...nd,...d->...n", X, w), axis=-1))),
        ("the weights are uniform: the softmax over the margins is missing", weighted(np.full_like(p, 1.0 / n))),
        (f"the step is n = {n} times too long: the gradient and the loss must both be means (or both sums); "
         "dividing a sum by a mean leaves a factor n", w + eta * n * step),
        (f"the step is n = {n} times too short: the gradient and the loss must both be means (or both sums)",
         w + eta * step / n),
        ("you returned the update alone: return the new iterate (w plus the update)", eta * step),
        ("the step goes the wrong way: an NGD step raises the smallest margins", w - eta * step),
        ("the step size eta is missing", w + step),
        ("that is a plain gradient step on the exponential loss: NGD divides the gradient by the loss",
         gd_step(w, X, y, eta, loss="exp")),
        ("those are the logistic NGD weights: this exercise normalizes the exponential loss (a softmax)",
         ngd_step(w, X, y, eta, loss="logistic")),
    ]
    if w.ndim > 1:
        mistakes.append(("the softmax is normalised over the batch axis: each task's weights run over its n "
                         "examples (note: nf.softmax's default axis is -2, the keys axis of attention scores)",
                         weighted(softmax(-m, axis=0))))
        mistakes.append(("the result is transposed: one row per task", np.swapaxes(w + eta * step, -1, -2)))
    return mistakes


def _gradient_hint(got, w, X, y, eta: float) -> str:
    """Say whether (got - w) / eta passes the package's gradient check as minus the gradient of log(loss)."""
    rng = np.random.default_rng(0)
    step = ((np.asarray(got, dtype=float) - w) / eta).reshape(-1, w.shape[-1])
    Xs, ys, ws = X.reshape((-1,) + X.shape[-2:]), y.reshape(-1, y.shape[-1]), w.reshape(-1, w.shape[-1])
    worst = 0.0
    for b in range(ws.shape[0]):
        num, ana = check_directions(lambda v: float(exp_log_loss(v, Xs[b], ys[b])), ws[b], -step[b], rng, directions=4)
        worst = max(worst, float(gradient_errors(num, ana).max()))
    if worst <= 1.0:
        return ("(your step / eta passes the gradient check as minus the gradient of the log of the loss, "
                "so look at eta and w)")
    return (f"the package's gradient checker (nf.check_directions) finds that (your result - w) / eta is not minus "
            f"the gradient of the log of the loss (largest error {worst:.1f} times the tolerance)")


_STEP_CASES = (((3,), 7, 4), ((), 5, 3), ((4,), 6, 2))  # (batch, n, d): B, n, d all different


@checker("NGD step")
def check_ngd_step(my_ngd_step) -> str:
    r"""``my_ngd_step(w, X, y, eta)`` -> :math:`w + \eta\sum_i \mathrm{softmax}(-m)_i y_i x_i`, shape (..., d).

    ``w`` (B, d) or (d,), ``X`` (B, n, d) or (n, d), ``y`` (B, n) or (n,). Compared with
    ``nf.ngd_step`` on a batch and a single task at moderate margins, then at margins of
    +-1000 or more in size (a softmax without the max shift gives NaN there). The inputs must
    not change.
    """
    eta = 0.3
    for seed, (batch, n, d) in enumerate(_STEP_CASES):
        X, y, w = _tasks(seed, batch, n, d)
        what = f"w {w.shape}, X {X.shape}, y {y.shape}"
        args = (w.copy(), X.copy(), y.copy())
        got = _call(my_ngd_step, what, *args, eta, hint=_SINGLE if not batch else "")
        for name, before, after in zip("wXy", (w, X, y), args):
            _unchanged(name, before, after)
        expected = ngd_step(w, X, y, eta)
        try:
            compare(f"NGD step on {what}", got, expected, alternatives=_ngd_mistakes(w, X, y, eta))
        except AssertionError as exc:
            if "largest difference" in str(exc) and np.shape(got) == expected.shape and np.all(np.isfinite(got)):
                raise AssertionError(f"{exc}; {_gradient_hint(got, w, X, y, eta)}") from None
            raise
    # margins of at least 1000 in size, of both signs: exp(-m) overflows or underflows without the shift
    X, y, w = _tasks(7, (3,), 6, 3)
    m = y * np.einsum("bnd,bd->bn", X, w)
    big = 1e3 * w / np.abs(m).min(-1, keepdims=True)
    got = np.asarray(_call(my_ngd_step, "margins of +-1000", big.copy(), X, y, eta,
                           hint="An overflow? Shift by the maximum before exponentiating"), dtype=float)
    if got.shape == big.shape and not np.all(np.isfinite(got)):
        raise AssertionError("the step is NaN or inf at margins of +-1000: exp overflows (or 0/0 after it "
                             "underflows); shift the exponent by its maximum before exponentiating")
    with np.errstate(all="ignore"):  # some wrong answers (the plain gradient step) overflow here
        wrong = [(msg, alt - big) for msg, alt in _ngd_mistakes(big, X, y, eta)]
    compare("NGD step at margins of +-1000 (result minus w)", got - big, ngd_step(big, X, y, eta) - big,
            rtol=1e-8, atol=1e-9, alternatives=wrong)
    return "batched and single task, finite at margins of +-1000"


# ---------------------------------------------------------------------------
# Exercise 2: the KKT residuals of a max-margin candidate (w, a)
# ---------------------------------------------------------------------------

KKT_KEYS = ("primal", "dual", "stationarity", "slackness", "gap")


def _kkt_mistakes(w, X, y, a) -> dict:
    """For each residual, the usual wrong versions with their messages."""
    m = y * np.einsum("...nd,...d->...n", X, w)  # (..., n)
    u = np.einsum("...n,...nd->...d", a * y, X)  # (..., d) sum_i a_i y_i x_i
    nw = np.linalg.norm(w, axis=-1)
    ww, sa = nw ** 2, a.sum(-1)
    clip = "a satisfied condition has residual 0, but yours goes negative: clip at zero"
    out = {
        "primal": [(f"primal: {clip}", 1.0 - m.min(-1)),
                   ("primal: every example must meet its constraint: use the smallest margin, not the mean",
                    np.maximum(0.0, 1.0 - m.mean(-1))),
                   ("primal: every example must meet its constraint: use the smallest margin, not the largest",
                    np.maximum(0.0, 1.0 - m.max(-1))),
                   ("primal: the margins are missing the labels y",
                    np.maximum(0.0, 1.0 - np.einsum("...nd,...d->...n", X, w).min(-1)))],
        "dual": [(f"dual: {clip}", -a.min(-1)),
                 ("dual: it measures how far the most negative a_i is below zero (yours looks at the sum)",
                  np.maximum(0.0, -a.sum(-1)))],
        "stationarity": [("stationarity: the labels y are missing from the weighted sum of the examples",
                          np.linalg.norm(w - np.einsum("...n,...nd->...d", a, X), axis=-1) / nw),
                         ("stationarity: the sign of the weighted sum is flipped", np.linalg.norm(w + u, axis=-1) / nw),
                         ("stationarity: it is relative: divide by the norm of w", np.linalg.norm(w - u, axis=-1))],
        "slackness": [("slackness: take absolute values (a violation can have either sign)",
                       np.max(a * (m - 1.0), axis=-1) / sa),
                      ("slackness: it is relative: divide by the sum of the a_i",
                       np.max(np.abs(a * (m - 1.0)), axis=-1)),
                      ("slackness: take the largest term, not the sum", np.sum(np.abs(a * (m - 1.0)), axis=-1) / sa)],
        "gap": [("gap: take the absolute value (the gap of a non-optimal pair can have either sign)",
                 (ww - sa) / (0.5 * ww)),
                ("gap: it is relative: divide by the primal objective", np.abs(ww - sa)),
                ("gap: the primal objective is half the squared norm of w", np.abs(ww - sa) / ww)],
    }
    if w.ndim > 1:  # reductions over the batch axis: shape (n,) instead of (B,)
        out["primal"].append((f"primal: {_AXIS}", np.maximum(0.0, 1.0 - m.min(0))))
        out["dual"].append((f"dual: {_AXIS}", np.maximum(0.0, -a.min(0))))
        out["slackness"].append((f"slackness: {_AXIS}", np.max(np.abs(a * (m - 1.0)), axis=0) / sa.sum()))
    return out


def _kkt_pairs(seed: int, batch: tuple, n: int, d: int) -> tuple:
    """X, y and named (w, a) pairs: the certified solution and four that break it in different ways."""
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, int(np.prod(batch, dtype=int)), n, d, margin=0.1)
    X, y = X.reshape(batch + (n, d)), y.reshape(batch + (n,))
    res = max_margin_dual(X, y)
    w_mm, a = res.w, res.a
    # a wrong support: extra weight on the point of largest margin (never a support vector), w recomputed
    m = y * np.einsum("...nd,...d->...n", X, w_mm)
    far = (m == m.max(-1, keepdims=True)).astype(float)
    a_wrong = a + 0.2 * far
    negative = a - 0.1 * far  # that point's a_i is now -0.1
    pairs = [
        ("the certified max-margin pair", w_mm, a),
        ("w scaled up by 1.5 (feasible with slack, not optimal)", 1.5 * w_mm, a),
        ("a perturbed w", 0.9 * w_mm + 0.1 * rng.standard_normal(w_mm.shape), a),
        ("a with a negative entry", w_mm, negative),
        ("a with a wrong support (w recomputed from a)", np.einsum("...n,...nd->...d", a_wrong * y, X), a_wrong),
        ("a random pair", rng.standard_normal(w_mm.shape), rng.uniform(0.1, 1.0, a.shape)),
    ]
    return X, y, pairs


_KKT_CASES = (((4,), 9, 3), ((), 7, 2))


@checker("KKT residuals")
def check_kkt_residuals(my_kkt_residuals) -> str:
    r"""``my_kkt_residuals(w, X, y, a)`` -> dict of the five residuals (see ``nf.kkt_residuals``), each (B,) or ().

    ``w`` (B, d) or (d,), ``X`` (B, n, d) or (n, d), ``y`` and ``a`` (B, n) or (n,). The checker
    feeds the certified max-margin pair and pairs that break it (w scaled up, w perturbed,
    a negative a_i, a wrong support, a random pair) and compares every residual with
    ``nf.kkt_residuals``. The inputs must not change.
    """
    for seed, (batch, n, d) in enumerate(_KKT_CASES):
        X, y, pairs = _kkt_pairs(seed, batch, n, d)
        for what, w, a in pairs:
            where = f"{what}, w {w.shape}, a {a.shape}"
            args = (w.copy(), X.copy(), y.copy(), a.copy())
            got = _call(my_kkt_residuals, where, *args, hint=_SINGLE if not batch else "")
            for name, before, after in zip(("w", "X", "y", "a"), (w, X, y, a), args):
                _unchanged(name, before, after)
            if not isinstance(got, dict):
                raise AssertionError(f"return a dict with the keys {list(KKT_KEYS)}, got {type(got).__name__}")
            missing = [k for k in KKT_KEYS if k not in got]
            if missing:
                raise AssertionError(f"your dict lacks the keys {missing} (expected all of {list(KKT_KEYS)})")
            expected, wrong = kkt_residuals(w, X, y, a), _kkt_mistakes(w, X, y, a)
            for key in KKT_KEYS:
                compare(f"{key} residual on {where}", got[key], expected[key], rtol=1e-8, atol=1e-12,
                        alternatives=wrong[key])
    return "certified, scaled, perturbed, negative-a, wrong-support and random pairs"


# ---------------------------------------------------------------------------
# Exercise 3 (small): the max-margin value from the dual variables alone
# ---------------------------------------------------------------------------


@checker("gamma from dual")
def check_gamma_from_dual(my_gamma_from_dual) -> str:
    r"""``my_gamma_from_dual(a)``, certified dual variables a (B, n) or (n,) -> :math:`\gamma_{mm}`, (B,) or ().

    Compared with the normalized margin of the certified ``w_mm`` on a batch (B = 4, n = 10)
    and a single task; ``a`` must not change.
    """
    for seed, (batch, n, d) in enumerate((((4,), 10, 3), ((), 8, 2))):
        X, y, pairs = _kkt_pairs(seed + 5, batch, n, d)
        _, w_mm, a_mm = pairs[0]  # the certified pair
        a = a_mm.copy()
        got = _call(my_gamma_from_dual, f"a of shape {a.shape}", a, hint=_SINGLE if not batch else "")
        _unchanged("a", a_mm, a)
        sa = a_mm.sum(-1)
        mistakes = [("the square root is missing", 1.0 / sa),
                    ("you returned the inverse of the margin", np.sqrt(sa)),
                    ("a mean over the examples where the duality gap gives a sum", 1.0 / np.sqrt(a_mm.mean(-1))),
                    ("the Euclidean norm of a is not what the duality gap gives", 1.0 / np.linalg.norm(a_mm, axis=-1))]
        if a_mm.ndim > 1:
            with np.errstate(divide="ignore"):  # an example that is a support vector of no task sums to 0
                mistakes.append((_AXIS, 1.0 / np.sqrt(a_mm.sum(0))))
        compare(f"gamma_mm from a of shape {a.shape}", got, normalized_margin(w_mm, X, y), rtol=1e-8,
                alternatives=mistakes)
    return None
