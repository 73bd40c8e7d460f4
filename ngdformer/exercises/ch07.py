"""Checkers for chapter 07, the looped model out of distribution (see ``ngdformer.exercises`` for the protocol)."""

from __future__ import annotations

import numpy as np

from ..construction import looped_forward, ngd_weights
from ..fast import looped_trajectory
from ..metrics import cosine, normalized_difference, relative_difference
from ..ood import Shift, anisotropic_cov, default_depths, transformer_iterates
from ..solvers import gd, ngd
from ..tasks import embed, read_weights, sample_tasks
from . import attempt, checker, compare

TRAIN_N = 40  #: the chapter's training context size; reusing it on a shifted context is a named mistake


def _layer(rng: np.random.Generator, d: int, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """A layer like a trained one: the construction with small errors in W12 and V21 (its context stays inert)."""
    W, V = ngd_weights(d, eta)
    W[:d, d:] += 0.05 * rng.standard_normal((d, d))
    V[d:, :d] += 0.05 * eta * rng.standard_normal((d, d))
    return W, V


def _call(fn, *args, d: int):
    """:func:`attempt`, with a ValueError raised by the package inside ``fn`` turned into a hint."""
    try:
        return attempt(fn, *args)
    except ValueError as err:
        msg, hint = str(err), ""
        if f"N = {2 * d} columns" in msg or "expected (" in msg or "Z must" in msg:
            hint = "; tokens are columns: the layer takes Z of shape (..., 2d, n + 1), as nf.embed(X, y, w0) builds it"
        elif "n_context" in msg:
            hint = ("; the context size must be that of the X you are given (its second-to-last axis), "
                    "not the training distribution's")
        raise AssertionError(f"your function raised ValueError: {msg}{hint}") from None


def _ood_alternatives(W, V, X, y, w0, eta, depths, expected):
    """The usual wrong answers of :func:`check_ood_curve`, each with the message that names it."""
    depths = np.asarray(depths)
    T, K, n, d = int(depths[-1]), len(depths), X.shape[-2], X.shape[-1]
    u = looped_trajectory(embed(X, y, w0), W, V, n, T + 1)  # (T + 2, ..., d), one extra depth for off-by-one
    v = ngd(w0, X, y, eta, T + 1)
    ut, vt = u[depths], v[depths]
    before = np.maximum(depths - 1, 0)
    off = "off by one in depth: compare the layer applied t times with NGD after t steps (row 0 is w0)"
    unnormalized = ("you compared the iterates themselves, whose length grows with depth; "
                    "the gap of Fig. 8 is between their directions (unit vectors)")
    context = ("the layer used a context of {k} points, not all n of the X you are given: take the context size "
               "from X's second-to-last axis (a shifted context has another n than the training distribution)")
    alts = [(off, normalized_difference(ut, v[depths + 1])), (off, normalized_difference(u[depths + 1], vt)),
            (off, normalized_difference(ut, v[before])), (off, normalized_difference(u[before], vt)),
            ("that is GD, not NGD: the layer performs normalized steps",
             normalized_difference(ut, gd(w0, X, y, eta, T)[depths])),
            ("that is NGD on the logistic loss; the layer performs NGD on the exponential loss",
             normalized_difference(ut, ngd(w0, X, y, eta, T, loss="logistic")[depths])),
            (unnormalized, np.linalg.norm(ut - vt, axis=-1)),
            (unnormalized, relative_difference(ut, vt)),
            (unnormalized, np.abs(np.linalg.norm(ut, axis=-1) - np.linalg.norm(vt, axis=-1))),
            ("that is the cosine of the angle between the iterates (or 1 minus it), not the gap between their unit "
             "vectors", cosine(ut, vt)),
            ("that is the cosine of the angle between the iterates (or 1 minus it), not the gap between their unit "
             "vectors", 1.0 - cosine(ut, vt)),
            ("index the trajectories at the depths in `depths` (row t is depth t), not at their positions 0, 1, ...",
             normalized_difference(u[:K], v[:K]))]
    try:  # GD on the exponential loss can overflow from a far start: then no student returns it either
        with np.errstate(all="ignore"):
            alts.append(("that is GD, not NGD: the layer performs normalized steps",
                         normalized_difference(ut, gd(w0, X, y, eta, T, loss="exp")[depths])))
    except ValueError:
        pass
    for other in (0.5, 1.0):
        if not np.isclose(other, eta):
            alts.append(("NGD ran with another step size than the eta you are given",
                         normalized_difference(ut, ngd(w0, X, y, other, T)[depths])))
    for k in {TRAIN_N, d, X.shape[0]}:
        if 1 <= k < n:
            alts.append((context.format(k=k), normalized_difference(transformer_iterates(
                W, V, X[..., :k, :], y[..., :k], w0, depths), vt)))
    if expected.ndim == 2:
        alts.append((f"one row per depth: expected shape {expected.shape} (depths first, then tasks)", expected.T))
    return alts


def _ood_case(rng, fn, *, B, n, d, eta, depths, sigma0=1.0, shift=None):
    """Run ``fn`` on one setting and compare it with the package; B = None means one unbatched task."""
    shift = Shift("checker") if shift is None else shift
    X, y, _ = sample_tasks(rng, B or 1, n, d, margin=shift.margin, flip=shift.flip, cov=shift.cov)
    w0 = sigma0 * rng.standard_normal((B or 1, d))
    if B is None:
        X, y, w0 = X[0], y[0], w0[0]
    W, V = _layer(rng, d, eta)
    inputs = (W, V, X, y, w0)
    copies = tuple(a.copy() for a in inputs)
    got = _call(fn, *copies, eta, np.array(depths), d=d)
    for name, a, b in zip(("W", "V", "X", "y", "w0"), inputs, copies):
        if not np.array_equal(a, b):
            raise AssertionError(f"your function changed its input {name} (work on a copy)")
    u, v = transformer_iterates(W, V, X, y, w0, depths), ngd(w0, X, y, eta, int(depths[-1]))[depths]  # (K, ..., d)
    expected = normalized_difference(u, v)  # (K, ...)
    compare(f"normalized difference over depth (n = {n}, d = {d}, eta = {eta})", got, expected, rtol=1e-6, atol=1e-9,
            alternatives=_ood_alternatives(W, V, X, y, w0, eta, depths, expected),
            hint="for each t in depths: the layer applied t times against t NGD steps, from the same w0")


@checker("looped layer vs NGD over depth")
def check_ood_curve(my_ood_curve, shift: Shift | None = None) -> str:
    """``my_ood_curve(W, V, X, y, w0, eta, depths)`` -> normalized difference to NGD, shape (len(depths), ...).

    Compared with the package (``transformer_iterates`` and ``normalized_difference``) on three
    settings of its own (shifted: anisotropic inputs, a margin, label noise, large w0; batched and
    unbatched) and, when ``shift`` (an :class:`ngdformer.ood.Shift`) is given, on the student's shift.
    """
    rng = np.random.default_rng(7)
    _ood_case(rng, my_ood_curve, B=5, n=47, d=3, eta=0.7, depths=np.array([1, 2, 5, 8]),
              shift=Shift("anisotropic", cov=anisotropic_cov(3)))
    _ood_case(rng, my_ood_curve, B=None, n=43, d=4, eta=0.5, depths=np.array([0, 3, 4, 7]),
              shift=Shift("margin", margin=0.2))
    _ood_case(rng, my_ood_curve, B=2, n=52, d=2, eta=1.3, depths=np.array([0, 1, 6]), sigma0=10.0,
              shift=Shift("label noise", flip=0.1))
    if shift is None:
        return "3 settings"
    d = 3 if shift.cov is None else np.shape(shift.cov)[0]
    depth = min(200, 10 if shift.depth is None else shift.depth)
    _ood_case(rng, my_ood_curve, B=4, n=45 if shift.n is None else shift.n, d=d, eta=0.25,
              depths=default_depths(depth, 6), sigma0=1.0 if shift.sigma0 is None else shift.sigma0, shift=shift)
    return f"3 settings and your shift {shift.name!r}"


@checker("first affected loop")
def check_first_affected_loop(my_first_affected_loop) -> str:
    """``my_first_affected_loop()`` -> the first application at which non-zero W11, W22 change the query column."""
    got = attempt(my_first_affected_loop)
    rng = np.random.default_rng(2)
    X, y, _ = sample_tasks(rng, 2, 6, 2)
    W, V = ngd_weights(2, 0.5)
    W22 = W.copy()  # the construction plus random W11 and W22 (the context's own attention becomes non-uniform)
    W22[:2, :2], W22[2:, 2:] = rng.standard_normal((2, 2, 2))
    Z = embed(X, y, rng.standard_normal((2, 2)))
    first = next(t for t in range(1, 6) if not np.allclose(read_weights(looped_forward(Z, W, V, 6, t)),
                                                            read_weights(looped_forward(Z, W22, V, 6, t))))
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
        raise AssertionError(f"return a whole number of applications (an int), got {got!r}")
    if got <= 0:
        raise AssertionError(f"{got} is not it: depth 0 is the input itself, before any application")
    if got < first:
        raise AssertionError(f"{got} is too early: in that application, what do the keys' bottom halves hold when "
                             "W22 meets them, and which columns can W11 act on?")
    if got > first:
        raise AssertionError(f"{got} is too late: W22 meets the keys' bottom halves. When do the context columns' "
                             "bottom halves stop being zero (and equal), and when is the query column next computed "
                             "from them?")
    return f"{first}, measured here with random W11, W22"
