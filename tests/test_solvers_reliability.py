"""The solvers at every scale and at every boundary.

The max-margin solution is scale-equivariant and certified on the data as given; the KKT checker is
itself checked on pairs whose residuals are computed by hand; every bad argument of a public solver
gets an error that names it; valid extremes (margins of +-1e4, ties, n = 1, d = 1) stay finite.
"""

import re
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from ngdformer import (gd, gd_step, kkt_residuals, max_margin, max_margin_dual, ngd, ngd_step, normalized_margin,
                       sample_tasks)
from ngdformer.checks import MAX_DEPTH, MAX_ELEMENTS
from ngdformer.losses import LOSSES

SEEDS = st.integers(0, 2**32 - 1)
SCALES = [1e-6, 1e-3, 1.0, 1e3, 1e6]
KKT_KEYS = {"primal", "dual", "stationarity", "slackness", "gap"}


def _unit(w):
    return w / np.linalg.norm(w, axis=-1, keepdims=True)


def _assert_certified(res, X, y, tol=1e-9):
    """The KKT conditions of (res.w, res.a) on the data exactly as given, to 10 times the solver's tolerance.

    stationarity, slackness and gap are relative, so scale-free; a margin is known to its round-off,
    tol (1 + |w| max|x_i|), also scale-free (|w| scales like 1/|x|); the dual residual is in the units
    of a (which scale like 1/|x|^2), so dual feasibility is asserted exactly instead.
    """
    kkt = kkt_residuals(res.w, X, y, res.a)
    for key in ("stationarity", "slackness", "gap"):
        assert np.all(kkt[key] <= tol), (key, np.max(kkt[key]))
    tol_m = tol * (1.0 + np.linalg.norm(res.w, axis=-1) * np.linalg.norm(X, axis=-1).max(axis=-1))  # (...,)
    assert np.all(kkt["primal"] <= tol_m), ("primal", np.max(kkt["primal"] / tol_m))
    assert np.all(res.a >= 0)
    m = y * np.einsum("...nd,...d->...n", X, res.w)  # margins on the data as given
    assert np.all(np.abs(m.min(axis=-1) - 1.0) <= tol_m)  # separated, the support on the margin


def _assert_same_vector(w, w_ref, rtol=1e-10):
    """Row by row, |w - w_ref| <= rtol |w_ref| (a relative error in norm, not entry by entry)."""
    err = np.linalg.norm(w - w_ref, axis=-1) / np.linalg.norm(w_ref, axis=-1)
    assert np.all(err <= rtol), np.max(err)


# --- 1. the max-margin solution at every scale ----------------------------------------------------------

# (B, n, d, margin): generic tasks, n = 1, d = 1, the paper's size, tied support points (margin pushes
# points to exactly the same distance), d > n, and 2-D tasks whose max margin is tiny (down to ~1e-6)
TASK_SETS = [(8, 20, 3, 0.0), (6, 1, 4, 0.0), (6, 10, 1, 0.0), (4, 150, 30, 0.0), (8, 100, 3, 0.1),
             (8, 30, 2, 0.1), (6, 5, 12, 0.0), (40, 30, 2, 0.0)]


@pytest.mark.parametrize("B,n,d,margin", TASK_SETS)
def test_max_margin_is_scale_equivariant_and_certified_on_the_data_as_given(B, n, d, margin):
    """max_margin(cX) = max_margin(X) / c: at 1e6 it misclassified points, at 1e-3 it called the data inseparable."""
    X, y, _ = sample_tasks(np.random.default_rng(B * n + d), B, n, d, margin=margin)
    ref = max_margin_dual(X, y)
    _assert_certified(ref, X, y)
    for c in SCALES:
        res = max_margin_dual(c * X, y)
        _assert_certified(res, c * X, y)
        _assert_same_vector(_unit(res.w), _unit(ref.w))  # the same direction
        _assert_same_vector(c * res.w, ref.w)  # and the same vector, divided by c
        np.testing.assert_array_equal(max_margin(c * X, y), res.w)


def test_max_margin_on_a_batch_whose_tasks_have_very_different_scales():
    X, y, _ = sample_tasks(np.random.default_rng(11), 10, 20, 3)
    c = np.array([1e-6, 1e6, 1e-3, 1e3, 1.0, 1e6, 1e-6, 3.7e4, 2.0**-30, 1e5])[:, None, None]
    res = max_margin_dual(c * X, y)
    _assert_certified(res, c * X, y)
    loop = np.stack([max_margin(X[b], y[b]) for b in range(10)])  # each task alone, at scale 1
    _assert_same_vector(_unit(res.w), _unit(loop))
    _assert_same_vector(c[:, 0] * res.w, loop)


@given(seed=SEEDS, n=st.integers(1, 12), d=st.integers(1, 5), log_c=st.floats(-6.0, 6.0))
def test_max_margin_direction_does_not_depend_on_the_scale_of_x(seed, n, d, log_c):
    X, y, _ = sample_tasks(np.random.default_rng(seed), 2, n, d)
    try:
        ref = max_margin_dual(X, y)
    except ValueError:  # a margin too small to certify at any scale; not this test's concern
        assume(False)
    c = 10.0**log_c
    res = max_margin_dual(c * X, y)
    _assert_certified(res, c * X, y)
    _assert_same_vector(c * res.w, ref.w)


@pytest.mark.parametrize("c", [1e-90, 1e90])
def test_max_margin_at_the_ends_of_its_range(c):
    X, y, _ = sample_tasks(np.random.default_rng(12), 4, 12, 3)
    res = max_margin_dual(c * X, y)
    _assert_certified(res, c * X, y)
    _assert_same_vector(c * res.w, max_margin(X, y))


@pytest.mark.parametrize("c", [1e-120, 1e120])
def test_max_margin_refuses_a_context_whose_duals_leave_the_float64_range(c):
    X, y, _ = sample_tasks(np.random.default_rng(13), 3, 5, 2)
    X = X.copy()
    X[1] *= c
    with pytest.raises(ValueError, match=r"X at batch index \(1,\) has largest entry \S+e[-+]1\d\d; max_margin accepts "
                                         r"each task's largest \|x_ij\| in \[1e-100, 1e\+100\]"):
        max_margin(X, y)


def test_normalized_margin_is_invariant_to_the_scale_of_w_and_equivariant_in_x():
    """gamma(s w; X) = gamma(w; X) for any finite s > 0 (|w| under- and overflowed) and gamma(w; cX) = c gamma(w; X)."""
    rng = np.random.default_rng(14)
    X, y, _ = sample_tasks(rng, 4, 6, 3)
    w = rng.standard_normal((4, 3))
    g = normalized_margin(w, X, y)
    atol = 1e-14 * np.abs(X).max()
    for s in (1e-300, 1e-160, 1e-6, 1e6, 1e160, 1e300):
        np.testing.assert_allclose(normalized_margin(s * w, X, y), g, rtol=1e-14, atol=atol)
    for c in SCALES:
        np.testing.assert_allclose(normalized_margin(w, c * X, y), c * g, rtol=1e-14, atol=c * atol)
    w32, X32, y32 = (a.astype(np.float32) for a in (w, X, y))
    for s in (1e-30, 1e30):  # |w|^2 under- and overflows float32
        g32 = normalized_margin(np.float32(s) * w32, X32, y32)
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g, rtol=1e-5, atol=1e-5)
    assert np.all(normalized_margin(np.zeros((4, 3)), X, y) == 0.0)


# --- 2. kkt_residuals validates its arguments -----------------------------------------------------------


def _pair(B=2, n=4, d=3):
    X, y, _ = sample_tasks(np.random.default_rng(15), B, n, d)
    res = max_margin_dual(X, y)
    return res.w, X, y, res.a


@pytest.mark.parametrize("shape", [(1,), (3,), (5,), (2, 1), (2, 3), (2, 5), (3, 4), (4, 2)])
def test_kkt_residuals_refuses_a_dual_of_the_wrong_shape(shape):
    """A dual of length 1 (or a wrong batch) was broadcast against the n examples instead of refused."""
    w, X, y, _ = _pair()
    with pytest.raises(ValueError, match=rf"a has shape {re.escape(str(shape))} but y has shape \(2, 4\); "
                                         r"expected a.shape == \(2, 4\)"):
        kkt_residuals(w, X, y, np.ones(shape))


def test_kkt_residuals_accepts_broadcast_leading_dimensions_like_w():
    """A dual's leading dimensions broadcast like w's; every residual then has the broadcast shape."""
    w, X, y, a = _pair()
    one = kkt_residuals(w, X, y, a)
    for args in ((w[None], X, y, a), (w, X, y, a[None]), (np.stack([w, w]), X, y, np.stack([a, a])),
                 (np.stack([w, w]), X, y, a)):
        got = kkt_residuals(*args)
        assert set(got) == KKT_KEYS
        for key in KKT_KEYS:
            assert got[key].shape == np.broadcast_shapes(args[0].shape[:-1], (2,), args[3].shape[:-1]), key
            np.testing.assert_array_equal(got[key][-1], one[key])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["w", "X", "a"])
def test_kkt_residuals_refuses_non_finite_input(where, bad):
    """NaN or inf anywhere is refused, naming the argument, never turned into a residual of 0."""
    args = dict(zip("wXya", (v.copy() for v in _pair())))
    args[where][(0,) * args[where].ndim] = bad
    with pytest.raises(ValueError, match=rf"^{where} contains a non-finite value \({bad}\)"):
        kkt_residuals(args["w"], args["X"], args["y"], args["a"])


def test_kkt_residuals_are_float64_unless_every_input_is_float32():
    """A float32 dual beside float64 w, X, y gave a float32 'dual' entry beside float64 ones."""
    w, X, y, a = _pair()
    for args, dtype in (((w, X, y, a.astype(np.float32)), np.float64), ((w.astype(np.float32), X, y, a), np.float64),
                        ((w.astype(np.float32), X.astype(np.float32), y.astype(np.float32), a.astype(np.float32)),
                         np.float32)):
        got = kkt_residuals(*args)
        assert all(v.dtype == dtype for v in got.values()), {k: v.dtype for k, v in got.items()}


def test_kkt_residuals_refuses_non_numeric_and_scalar_duals():
    w, X, y, a = _pair()
    with pytest.raises(TypeError, match="a must be real numeric"):
        kkt_residuals(w, X, y, np.full(a.shape, "1"))
    with pytest.raises(ValueError, match=r"a must have at least 1 dimensions, got shape \(\)"):
        kkt_residuals(w, X, y, 1.0)
    with pytest.raises(ValueError, match=r"labels y must be in \{-1, \+1\}, found 0.5"):
        kkt_residuals(w, X, np.where(y > 0, 0.5, -1.0), a)


# --- 3. kkt_residuals on pairs whose residuals are known by hand ----------------------------------------

# One-dimensional context: x = (1, -2), y = (1, -1), so y_i x_i = (1, 2); the optimum is w = 1, a = (1, 0).
# Each row: what the pair breaks, w, a, then (primal, dual, stationarity, slackness, gap) worked out by hand.
X_1D, Y_1D = np.array([[1.0], [-2.0]]), np.array([1.0, -1.0])
HAND_1D = [
    ("the optimum", [1.0], [1.0, 0.0], (0.0, 0.0, 0.0, 0.0, 0.0)),
    # m = (0.5, 1): primal 1 - 0.5; |0.5 (0.5 - 1)| / 0.5; |0.25 - 0.5| / 0.125
    ("w violates a margin", [0.5], [0.5, 0.0], (0.5, 0.0, 0.0, 0.5, 2.0)),
    # sum a y x = 1.5 - 0.5 = 1 = w; max(|1.5 * 0|, |-0.25 * 1|) / 1.25; |1 - 1.25| / 0.5
    ("a negative dual", [1.0], [1.5, -0.25], (0.0, 0.25, 0.0, 0.2, 0.5)),
    # sum a y x = 0.5: |1 - 0.5| / 1; no slack on the support; |1 - 0.5| / 0.5
    ("a dual that does not reproduce w", [1.0], [0.5, 0.0], (0.0, 0.0, 0.5, 0.0, 1.0)),
    # m = (-1, -2): primal 1 + 2; |-1 - 1| / 1; |1 (-1 - 1)| / 1; |1 - 1| / 0.5
    ("w of the wrong sign", [-1.0], [1.0, 0.0], (3.0, 0.0, 2.0, 2.0, 0.0)),
    # m = (2, 4), sum a y x = 1: |2 - 1| / 2; |0.5 (4 - 1)| / 0.5; |4 - 0.5| / 2
    ("w too long, the dual on the wrong point", [2.0], [0.0, 0.5], (0.0, 0.0, 0.5, 3.0, 1.75)),
]

# Two-dimensional context: y_i x_i = e_1, e_2; the optimum is w = (1, 1), a = (1, 1).
X_2D, Y_2D = np.array([[1.0, 0.0], [0.0, -1.0]]), np.array([1.0, -1.0])
HAND_2D = [
    ("the optimum", [1.0, 1.0], [1.0, 1.0], (0.0, 0.0, 0.0, 0.0, 0.0)),
    # m = (2, 0.5); w - sum a y x = (1, 0.5): sqrt(1.25 / 4.25); |1 (2 - 1)| / 1; |4.25 - 1| / 2.125
    ("w violates a margin", [2.0, 0.5], [1.0, 0.0], (0.5, 0.0, np.sqrt(1.25 / 4.25), 1.0, 3.25 / 2.125)),
    # w - sum a y x = (-1, 2): sqrt(5 / 2); both margins 1, no slack; |2 - 1| / 1
    ("a negative dual", [1.0, 1.0], [2.0, -1.0], (0.0, 1.0, np.sqrt(2.5), 0.0, 1.0)),
]


@pytest.mark.parametrize("X,y,table", [(X_1D, Y_1D, HAND_1D), (X_2D, Y_2D, HAND_2D)], ids=["1d", "2d"])
def test_kkt_residuals_on_hand_computed_pairs(X, y, table):
    """Every residual on known non-optimal pairs: a mutated residual (a sign, a missing max) changes a number."""
    names = ("primal", "dual", "stationarity", "slackness", "gap")
    for what, w, a, expected in table:
        got = kkt_residuals(np.array(w), X, y, np.array(a))
        assert set(got) == KKT_KEYS
        for key, value in zip(names, expected):
            assert got[key].shape == ()
            np.testing.assert_allclose(got[key], value, rtol=1e-15, atol=1e-15, err_msg=f"{what}: {key}")
    # the same pairs as one batch: each row its own task
    W = np.array([row[1] for row in table])
    A = np.array([row[2] for row in table])
    got = kkt_residuals(W, np.broadcast_to(X, (len(table),) + X.shape), np.broadcast_to(y, (len(table),) + y.shape), A)
    for i, key in enumerate(names):
        np.testing.assert_allclose(got[key], [row[3][i] for row in table], rtol=1e-15, atol=1e-15, err_msg=key)


def test_kkt_residuals_is_inf_not_a_warning_where_a_ratio_overflows():
    """w = 0 with a large dual (or in float32 with any dual): the relative stationarity is beyond the range: inf."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = kkt_residuals(np.zeros(1), X_1D, Y_1D, np.array([1e10, 0.0]))
        got32 = kkt_residuals(np.zeros(1, np.float32), X_1D.astype(np.float32), Y_1D.astype(np.float32),
                              np.array([10.0, 0.0], np.float32))
    assert got["stationarity"] == np.inf and got["gap"] == np.inf
    assert got["primal"] == 1.0 and got["dual"] == 0.0
    # beyond float32's range: inf where NumPy keeps float32 scalars (NumPy 2), a float64 above it on NumPy 1.x
    big32 = float(np.finfo(np.float32).max)
    assert got32["stationarity"] > big32 and got32["gap"] > big32 and got32["slackness"] == 1.0


# --- 4. every bad argument is named ---------------------------------------------------------------------


def _ctx():
    X, y, w = sample_tasks(np.random.default_rng(16), 2, 4, 3)
    return w, X, y


W0, X0, Y0 = _ctx()
BIG = 10**400  # an int beyond the float range
TYPE, VALUE = TypeError, ValueError

# (call, exception, message): every public function of ngdformer.solvers, every kind of bad argument
BAD_CALLS = {
    # step sizes of one step
    "gd_step eta str": (lambda: gd_step(W0, X0, Y0, "0.1"), TYPE, r"eta must be a real number, got '0.1'"),
    "gd_step eta bool": (lambda: gd_step(W0, X0, Y0, True), TYPE, r"eta must be a real number, got True"),
    "gd_step eta None": (lambda: gd_step(W0, X0, Y0, None), TYPE, r"eta must be a real number, got None"),
    "gd_step eta list": (lambda: gd_step(W0, X0, Y0, [0.1]), TYPE, r"eta must be a real number, got \[0.1\]"),
    "gd_step eta nan": (lambda: gd_step(W0, X0, Y0, np.nan), VALUE, r"eta must be finite and > 0, got nan"),
    "gd_step eta inf": (lambda: gd_step(W0, X0, Y0, np.inf), VALUE, r"eta must be finite and > 0, got inf"),
    "gd_step eta 0": (lambda: gd_step(W0, X0, Y0, 0), VALUE, r"eta must be finite and > 0, got 0"),
    "gd_step eta big": (lambda: gd_step(W0, X0, Y0, BIG), VALUE, r"eta must be finite and > 0, got 1000"),
    "ngd_step eta neg": (lambda: ngd_step(W0, X0, Y0, -0.5), VALUE, r"eta must be finite and > 0, got -0.5"),
    "ngd_step eta big": (lambda: ngd_step(W0, X0, Y0, BIG), VALUE, r"eta must be finite and > 0, got 1000"),
    "ngd_step eta bool": (lambda: ngd_step(W0, X0, Y0, np.True_), TYPE, r"eta must be a real number"),
    # loss names
    "gd_step loss list": (lambda: gd_step(W0, X0, Y0, 0.1, loss=["exp"]), TYPE,
                          r"loss must be a name in ngdformer.losses.LOSSES .*, got \['exp'\]"),
    "gd_step loss None": (lambda: gd_step(W0, X0, Y0, 0.1, loss=None), TYPE, r"loss must be a name .*, got None"),
    "gd_step loss hinge": (lambda: gd_step(W0, X0, Y0, 0.1, loss="hinge"), VALUE,
                           r"loss must be one of \[.*'exp'.*'logistic'.*\], got 'hinge'"),
    "ngd_step loss int": (lambda: ngd_step(W0, X0, Y0, 0.1, loss=3), TYPE, r"loss must be a name .*, got 3"),
    "ngd_step loss hinge": (lambda: ngd_step(W0, X0, Y0, 0.1, loss="hinge"), VALUE, r"loss must be .*'hinge'"),
    "ngd_step loss squared": (lambda: ngd_step(W0, X0, Y0, 0.1, loss="squared"), VALUE, r"loss must be .*'squared'"),
    "gd loss list": (lambda: gd(W0, X0, Y0, 0.1, 2, loss=["exp"]), TYPE, r"loss must be a name"),
    "ngd loss hinge": (lambda: ngd(W0, X0, Y0, 0.1, 2, loss="hinge"), VALUE, r"loss must be .*'hinge'"),
    "ngd loss squared, 0 steps": (lambda: ngd(W0, X0, Y0, 0.1, 0, loss="squared"), VALUE,
                                  r"loss must be .*'squared'"),
    # numbers of steps
    "gd steps float": (lambda: gd(W0, X0, Y0, 0.1, 2.5), TYPE, r"steps must be an integer, got 2.5"),
    "gd steps bool": (lambda: gd(W0, X0, Y0, 0.1, True), TYPE, r"steps must be an integer, got True"),
    "gd steps str": (lambda: gd(W0, X0, Y0, 0.1, "3"), TYPE, r"steps must be an integer, got '3'"),
    "ngd steps None": (lambda: ngd(W0, X0, Y0, 0.1, None), TYPE, r"steps must be an integer, got None"),
    "ngd steps float64": (lambda: ngd(W0, X0, Y0, 0.1, np.float64(3)), TYPE, r"steps must be an integer"),
    "ngd steps negative": (lambda: ngd(W0, X0, Y0, 0.1, -1), VALUE, r"steps must be finite and >= 0, got -1"),
    "ngd steps above MAX_DEPTH": (lambda: ngd(W0, X0, Y0, 0.1, MAX_DEPTH + 1), VALUE,
                                  rf"steps = {MAX_DEPTH + 1} is too large: the limit is {MAX_DEPTH}"),
    "gd steps big": (lambda: gd(W0, X0, Y0, 0.1, BIG), VALUE,
                     rf"steps = 1000\S* is too large: the limit is {MAX_DEPTH}"),
    # step sizes of a trajectory
    "ngd eta big": (lambda: ngd(W0, X0, Y0, BIG, 2), VALUE, r"eta must be finite and > 0, got 1000"),
    "gd eta big entry": (lambda: gd(W0, X0, Y0, [0.1, BIG], 2), VALUE, r"eta must be finite and > 0, got 1000"),
    "ngd eta bools": (lambda: ngd(W0, X0, Y0, [True, True], 2), TYPE, r"eta must be a real number, got (np\.)?True"),
    "ngd eta strs": (lambda: ngd(W0, X0, Y0, ["0.1", "0.2"], 2), TYPE,
                     r"eta must be a real number, got (np\.str_\()?'0.1'"),
    "ngd eta str": (lambda: ngd(W0, X0, Y0, "0.1", 2), TYPE, r"eta must be a real number, got '0.1'"),
    "gd eta nan entry": (lambda: gd(W0, X0, Y0, [0.1, np.nan], 2), VALUE, r"eta must be finite and > 0, got nan"),
    "gd eta 2-d": (lambda: gd(W0, X0, Y0, [[0.1, 0.2]], 2), VALUE,
                   r"eta must be a scalar or have one entry per step \(2\), got shape \(1, 2\)"),
    "gd eta ragged": (lambda: gd(W0, X0, Y0, [[0.1], [0.1, 0.2]], 2), VALUE,
                      r"eta must be a scalar or a 1-D array of step sizes"),
    # the max-margin solver's options
    "max_margin tol str": (lambda: max_margin(X0, Y0, tol="1e-10"), TYPE, r"tol must be a real number, got '1e-10'"),
    "max_margin tol bool": (lambda: max_margin(X0, Y0, tol=True), TYPE, r"tol must be a real number, got True"),
    "max_margin tol nan": (lambda: max_margin(X0, Y0, tol=np.nan), VALUE, r"tol must be finite and > 0, got nan"),
    "max_margin tol 0": (lambda: max_margin(X0, Y0, tol=0.0), VALUE, r"tol must be finite and > 0, got 0.0"),
    "max_margin tol 0.5": (lambda: max_margin(X0, Y0, tol=0.5), VALUE, r"tol = 0.5 is too large: the limit is 0.01"),
    "max_margin tol big": (lambda: max_margin(X0, Y0, tol=BIG), VALUE,
                           r"tol = 1000\S* is too large: the limit is 0.01"),
    "max_margin max_iter float": (lambda: max_margin(X0, Y0, max_iter=2.5), TYPE,
                                  r"max_iter must be an integer, got 2.5"),
    "max_margin max_iter bool": (lambda: max_margin(X0, Y0, max_iter=True), TYPE,
                                 r"max_iter must be an integer, got True"),
    "max_margin_dual max_iter str": (lambda: max_margin_dual(X0, Y0, max_iter="200"), TYPE,
                                     r"max_iter must be an integer, got '200'"),
    "max_margin_dual max_iter 0": (lambda: max_margin_dual(X0, Y0, max_iter=0), VALUE,
                                   r"max_iter must be finite and > 0, got 0"),
    "max_margin_dual max_iter above MAX_DEPTH": (lambda: max_margin_dual(X0, Y0, max_iter=MAX_DEPTH + 1), VALUE,
                                                 rf"max_iter = {MAX_DEPTH + 1} is too large: the limit is {MAX_DEPTH}"),
    "max_margin_dual max_iter big": (lambda: max_margin_dual(X0, Y0, max_iter=BIG), VALUE,
                                     rf"max_iter = 1000\S* is too large: the limit is {MAX_DEPTH}"),
    "max_margin min_margin neg": (lambda: max_margin(X0, Y0, min_margin=-1e-9), VALUE,
                                  r"min_margin must be finite and >= 0, got -1e-09"),
    "max_margin min_margin 1": (lambda: max_margin(X0, Y0, min_margin=1.0), VALUE, r"min_margin must be < 1"),
    "max_margin min_margin str": (lambda: max_margin(X0, Y0, min_margin="0"), TYPE,
                                  r"min_margin must be a real number, got '0'"),
    "max_margin min_margin nan": (lambda: max_margin(X0, Y0, min_margin=np.nan), VALUE,
                                  r"min_margin must be finite and >= 0, got nan"),
    "max_margin unknown option": (lambda: max_margin(X0, Y0, maxiter=10), TYPE, r"maxiter"),
    "max_margin X str": (lambda: max_margin(np.full(X0.shape, "a"), Y0), TYPE, r"X must be real numeric"),
    "max_margin y zero": (lambda: max_margin(X0, np.where(Y0 > 0, 0.0, Y0)), VALUE,
                          r"labels y must be in \{-1, \+1\}, found 0.0"),
    "max_margin all zero": (lambda: max_margin(np.zeros((2, 3, 2)), np.ones((2, 3))), VALUE,
                            r"the context \(X, y\) at batch index \(0,\) is not linearly separable through the origin "
                            r"\(every x_i is zero\)"),
    "max_margin_dual int zeros": (lambda: max_margin_dual(np.zeros((1, 1), int), np.ones(1)), VALUE,
                                  r"the context \(X, y\) at batch index \(0,\) is not linearly separable"),
    "max_margin d = 0": (lambda: max_margin(np.ones((1, 0)), np.ones(1)), VALUE,
                         r"X has shape \(1, 0\) with d = 0 features: no context is separable"),
    # the trajectories call their start w0
    "gd w0 nan": (lambda: gd(np.array([np.nan]), np.ones((1, 1)), np.ones(1), 0.5, 0), VALUE,
                  r"^w0 contains a non-finite value \(nan\)"),
    "ngd w0 scalar": (lambda: ngd(np.float64(0.3), np.ones((1, 1)), np.ones(1), 0.5, 0), VALUE,
                      r"^w0 must have at least 1 dimensions"),
    "ngd w0 complex": (lambda: ngd(np.zeros(1, complex), np.ones((1, 1)), np.ones(1), 0.5, 0), TYPE,
                       r"^w0 must be real numeric"),
    "gd w0 shape": (lambda: gd(np.zeros(2), np.ones((1, 1)), np.ones(1), 0.5, 1), VALUE,
                    r"^w0 has shape \(2,\) but X has shape \(1, 1\)"),
    # arrays of the other functions
    "normalized_margin w str": (lambda: normalized_margin(np.full(W0.shape, "a"), X0, Y0), TYPE,
                                r"w must be real numeric"),
    "normalized_margin w nan": (lambda: normalized_margin(np.full(W0.shape, np.nan), X0, Y0), VALUE,
                                r"w contains a non-finite value \(nan\)"),
    "kkt_residuals a str": (lambda: kkt_residuals(W0, X0, Y0, np.full(Y0.shape, "a")), TYPE, r"a must be real numeric"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_are_named(name):
    call, kind, message = BAD_CALLS[name]
    with pytest.raises(kind, match=message) as info:
        call()
    assert isinstance(info.value, (TypeError, ValueError))
    if kind is TYPE and "maxiter" not in message:  # the package's wrong-type errors are ValueErrors too
        assert isinstance(info.value, ValueError)


TOO_LARGE = {  # results above MAX_ELEMENTS are refused before anything is allocated
    "gd trajectory": (lambda: gd(np.zeros((100, 3)), np.ones((100, 2, 3)), np.ones((100, 2)), 0.1, MAX_DEPTH),
                      r"the trajectory of steps = 1000000 would have shape \(1000001, 100, 3\)"),
    "ngd trajectory": (lambda: ngd(np.zeros((1, 300)), np.ones((1, 2, 300)), np.ones((1, 2)), 0.1, 900_000),
                       r"the trajectory of steps = 900000 would have shape \(900001, 1, 300\)"),
    "normalized_margin broadcast": (lambda: normalized_margin(np.ones((2**15, 1, 2)), np.ones((2**14, 1, 2)),
                                                              np.ones((2**14, 1))),
                                    r"the margins of w against X would have shape \(32768, 16384, 1\)"),
    "ngd_step broadcast": (lambda: ngd_step(np.ones((2**15, 1, 2)), np.ones((2**14, 1, 2)), np.ones((2**14, 1)), 0.1),
                           r"the margins of w against X would have shape \(32768, 16384, 1\)"),
    "kkt_residuals broadcast dual": (lambda: kkt_residuals(np.ones(1), np.ones((2**14, 1, 1)), np.ones((2**14, 1)),
                                                           np.ones((2**15, 1, 1))),
                                     r"the margins of w against X would have shape \(32768, 16384, 1\)"),
    "max_margin d x d": (lambda: max_margin(np.ones((1, 1, 20000)), np.ones((1, 1))),
                         r"the Newton matrices \(..., d, d\) of max_margin would have shape \(1, 20000, 20000\)"),
}


@pytest.mark.parametrize("name", sorted(TOO_LARGE))
def test_results_too_large_are_refused(name):
    call, message = TOO_LARGE[name]
    with pytest.raises(ValueError, match=message + rf" = \d+ entries; the limit is {MAX_ELEMENTS}"):
        call()


# --- 5. valid extremes stay finite, with no warnings ----------------------------------------------------

X_EXT = np.array([[[1.0, 0.2], [0.3, 1.0], [0.5, 0.5]]] * 2)
Y_EXT = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0]])  # the second task has margins of both signs


def _finite(*results):
    for r in results:
        for v in (r.values() if isinstance(r, dict) else [r]):
            assert np.all(np.isfinite(v)), v


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_margins_of_1e4_stay_finite_without_warnings(dtype, scale):
    X, y = X_EXT.astype(dtype), Y_EXT.astype(dtype)
    w = (scale * np.ones((2, 2))).astype(dtype)  # margins of order +-1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gd_losses = [loss for loss in LOSSES if loss != "exp"]  # exp: e^{1e4} itself exceeds the range, see below
        for loss in gd_losses:
            out = gd_step(w, X, y, 0.5, loss=loss)
            assert out.dtype == dtype
            _finite(out, gd(w, X, y, 0.5, 3, loss=loss))
        for loss in ("exp", "logistic"):
            out = ngd_step(w, X, y, 0.5, loss=loss)
            assert out.dtype == dtype
            _finite(out, ngd(w, X, y, 0.5, 3, loss=loss))
        _finite(normalized_margin(w, X, y), kkt_residuals(w, X, y, np.ones((2, 3), dtype)))
        m = normalized_margin(w, X, y)
        assert m.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gd_on_the_exponential_loss_far_from_the_data(dtype):
    """The true step exceeds the range: one step is inf (as documented), a trajectory refuses with a message."""
    X, y = X_EXT.astype(dtype), Y_EXT.astype(dtype)
    w = (-1e4 * np.ones((2, 2))).astype(dtype)  # margins of -1e4 in the first task
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isinf(gd_step(w, X, y, 0.5, loss="exp")[0]))
        with pytest.raises(ValueError, match=rf"gd \(loss='exp'\) left the {np.dtype(dtype).name} range at step 1 "
                                             r"of 3 for batch index \(0,\) with eta = 0.5"):
            gd(w, X, y, 0.5, 3, loss="exp")
        with pytest.raises(ValueError, match=r"ngd \(loss='exp'\) left the float64 range at step 2 of 4"):
            ngd(np.zeros(2), 1e10 * X_EXT, Y_EXT, 1e298, 4)  # eta * max|x| beyond the range
        assert np.all(np.isfinite(gd(-w[:1], X[:1], y[:1], 0.5, 3, loss="exp")))  # margins of +1e4 are fine


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_n_equal_1_d_equal_1_and_ties_have_their_closed_forms(scale):
    rng = np.random.default_rng(17)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # n = 1: w_mm = y x / |x|^2, one NGD step adds eta y x, the normalized margin is y <w, x> / |w|
        X = scale * rng.standard_normal((3, 1, 4))
        y = np.array([[1.0], [-1.0], [1.0]])
        w_mm = y * X[:, 0] / np.sum(X[:, 0] ** 2, axis=-1, keepdims=True)
        _assert_same_vector(max_margin(X, y), w_mm, rtol=1e-13)
        w = rng.standard_normal((3, 4))
        np.testing.assert_allclose(ngd_step(w, X, y, 0.3), w + 0.3 * y * X[:, 0], rtol=1e-14)
        np.testing.assert_allclose(normalized_margin(w, X, y),
                                   y[:, 0] * np.sum(w * X[:, 0], -1) / np.linalg.norm(w, axis=-1), rtol=1e-13)
        # d = 1: w_mm = s / min_i |x_i|, s the common sign of the y_i x_i
        X = scale * np.array([[[2.0], [-0.5], [3.0]], [[-1.0], [-4.0], [2.0]]])
        y = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
        np.testing.assert_allclose(max_margin(X, y), [[2.0 / scale], [1.0 / scale]], rtol=1e-13)
        _finite(ngd(np.zeros((2, 1)), X, y, 0.5, 5), gd(np.zeros((2, 1)), X, y, 0.5, 5))
        # ties: every point the same, with a margin of +-1e4: uniform weights, w_mm = y x / |x|^2 and a split dual
        x = scale * np.array([0.6, -0.8])
        X, y = np.broadcast_to(x, (1, 5, 2)), np.ones((1, 5))
        res = max_margin_dual(X, y)
        _assert_certified(res, X, y)
        _assert_same_vector(res.w, (x / scale**2)[None], rtol=1e-13)
        for s in (1e4, -1e4):
            w = s * x[None] / scale**2  # margins of exactly s
            np.testing.assert_allclose(ngd_step(w, X, y, 0.5), w + 0.5 * x, rtol=1e-14)
            np.testing.assert_allclose(normalized_margin(w, X, y), [np.sign(s) * scale], rtol=1e-14)
            _finite(gd_step(w, X, y, 0.5), ngd(w, X, y, 0.5, 3, loss="logistic"), kkt_residuals(w, X, y, res.a))
