"""Bad input to the layer, the construction and the variants: refused at the boundary, naming the argument and value.

Every public function of ``attention.py``, ``construction.py`` and ``variants.py`` gets the same kinds of
input: wrong types, wrong shapes, NaN/inf, empty arrays, mismatched batch dimensions, float32. Each is
either refused with a ValueError or TypeError whose message names the argument and the value, or computed
correctly (checked here against the float64 or the non-empty call).
"""

import inspect
import warnings

import numpy as np
import pytest

import ngdformer as nf
from ngdformer import attention, construction, variants
from ngdformer.checks import MAX_DEPTH, InputTypeError

B, d, n = 2, 2, 4
D, N = 2 * d, n + 1
_rng = np.random.default_rng(0)
Z = _rng.standard_normal((B, D, N))
W = 0.5 * _rng.standard_normal((D, D))
V = 0.5 * _rng.standard_normal((D, D))
G = _rng.standard_normal((B, D, N))
X, y, _ = nf.sample_tasks(_rng, B, n, d)
w = _rng.standard_normal((B, d))
P = _rng.standard_normal((d, d))  # not symmetric
WS, VS = nf.ngd_weights(d, 0.5)  # inert weights, for the query-only loop
OUT, CACHE = nf.attention_forward(Z, W, V, n)
_, CACHES = nf.stack_forward(Z, [(W, V), (V, W)], n)
_, LOOP_CACHES = nf.looped_forward_with_cache(Z, W, V, n, 2)

MODULES = (attention, construction, variants)
PUBLIC = sorted(name for module in MODULES for name, obj in vars(module).items()
                if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__)


def _nan(a, where=(0,)):
    a = np.array(a, dtype=float)
    a[where] = np.nan
    return a


def _case(name, label, call, exc, pattern):
    return pytest.param(name, call, exc, pattern, id=f"{name}-{label}")


# (function, case, call, expected exception, pattern of its message): the pattern names the argument and value
REFUSED = [
    # softmax(s, axis)
    _case("softmax", "string", lambda: nf.softmax("ab"), InputTypeError, r"s must be real numeric, got dtype <U2"),
    _case("softmax", "none", lambda: nf.softmax(None), InputTypeError, r"s must be real numeric, got dtype object"),
    _case("softmax", "scalar", lambda: nf.softmax(1.0),
          ValueError, r"s must have at least 1 dimensions, got shape \(\)"),
    _case("softmax", "nan", lambda: nf.softmax([0.0, np.nan]), ValueError, r"^s contains a non-finite value \(nan\)"),
    _case("softmax", "inf", lambda: nf.softmax([[np.inf], [1.0]]),
          ValueError, r"^s contains a non-finite value \(inf\)"),
    _case("softmax", "minus-inf", lambda: nf.softmax([-np.inf, 1.0]), ValueError,
          r"^s contains a non-finite value \(-inf\)"),
    _case("softmax", "empty-keys", lambda: nf.softmax(np.zeros((0, 3))), ValueError,
          r"s has shape \(0, 3\): axis -2 is empty"),
    _case("softmax", "axis-out-of-range", lambda: nf.softmax(np.zeros((2, 3)), axis=2), ValueError,
          r"axis = 2 is out of range for s of shape \(2, 3\)"),
    _case("softmax", "axis-string", lambda: nf.softmax(np.zeros((2, 3)), axis="0"), InputTypeError,
          r"axis must be an integer or None, got '0'"),
    _case("softmax", "axis-bool", lambda: nf.softmax(np.zeros((2, 3)), axis=True), InputTypeError,
          r"axis must be an integer or None, got True"),
    # softmax_backward(dp, p, axis)
    _case("softmax_backward", "shape", lambda: nf.softmax_backward(np.ones(3), np.full(2, 0.5)), ValueError,
          r"dp has shape \(3,\), expected \(2,\), the shape of p"),
    _case("softmax_backward", "batch", lambda: nf.softmax_backward(np.ones((3, 2, 1)), np.full((2, 2, 1), 0.5)),
          ValueError, r"dp has shape \(3, 2, 1\), expected \(2, 2, 1\)"),
    _case("softmax_backward", "dp-nan", lambda: nf.softmax_backward([np.nan, 1.0], [0.5, 0.5]), ValueError,
          r"^dp contains a non-finite value \(nan\)"),
    _case("softmax_backward", "p-inf", lambda: nf.softmax_backward([1.0, 1.0], [np.inf, 0.5]), ValueError,
          r"^p contains a non-finite value \(inf\)"),
    _case("softmax_backward", "p-string", lambda: nf.softmax_backward([1.0], "a"), InputTypeError,
          r"p must be real numeric"),
    # attention_forward(Z, W, V, n_context, attend_self, query_only)
    _case("attention_forward", "Z-string", lambda: nf.attention_forward("Z", W, V, n), InputTypeError,
          r"Z must be real numeric, got dtype <U1"),
    _case("attention_forward", "Z-nan", lambda: nf.attention_forward(_nan(Z), W, V, n), ValueError,
          r"^Z contains a non-finite value \(nan\)"),
    _case("attention_forward", "W-inf", lambda: nf.attention_forward(Z, np.full((D, D), np.inf), V, n), ValueError,
          r"^W contains a non-finite value \(inf\)"),
    _case("attention_forward", "V-shape", lambda: nf.attention_forward(Z, W, V[:2], n), ValueError,
          r"V has shape \(2, 4\), expected \(4, 4\)"),
    _case("attention_forward", "W-batched", lambda: nf.attention_forward(Z, np.stack([W, W]), V, n), ValueError,
          r"W has shape \(2, 4, 4\), expected \(4, 4\)"),
    _case("attention_forward", "empty-tokens", lambda: nf.attention_forward(np.zeros((B, D, 0)), W, V, 1),
          ValueError, r"n_context = 1 is out of range: Z has N = 0 columns"),
    _case("attention_forward", "no-rows", lambda: nf.attention_forward(np.zeros((B, 0, N)), W[:0, :0], V[:0, :0], n),
          ValueError, r"Z must have an even, positive number of rows D = 2d, got D = 0"),
    # attention_backward(dout, cache)
    _case("attention_backward", "dout-nan", lambda: nf.attention_backward(_nan(G), CACHE), ValueError,
          r"^dout contains a non-finite value \(nan\)"),
    _case("attention_backward", "dout-inf", lambda: nf.attention_backward(-np.inf * np.ones_like(G), CACHE),
          ValueError, r"^dout contains a non-finite value \(-inf\)"),
    _case("attention_backward", "dout-batch", lambda: nf.attention_backward(np.ones((3, D, N)), CACHE), ValueError,
          r"dout has shape \(3, 4, 5\), expected \(2, 4, 5\)"),
    _case("attention_backward", "dout-unbatched", lambda: nf.attention_backward(G[0], CACHE), ValueError,
          r"dout has shape \(4, 5\), expected \(2, 4, 5\)"),
    _case("attention_backward", "dout-string", lambda: nf.attention_backward("dout", CACHE), InputTypeError,
          r"dout must be real numeric"),
    _case("attention_backward", "cache-string", lambda: nf.attention_backward(G, "cache"), InputTypeError,
          r"cache must be the AttentionCache returned by attention_forward, got str"),
    _case("attention_backward", "cache-tuple", lambda: nf.attention_backward(G, tuple(CACHE)), InputTypeError,
          r"cache must be the AttentionCache returned by attention_forward, got tuple"),
    # attention_naive(Z, W, V, n_context, attend_self, query_only)
    _case("attention_naive", "Z-nan", lambda: nf.attention_naive(_nan(Z), W, V, n), ValueError,
          r"^Z contains a non-finite value \(nan\)"),
    _case("attention_naive", "W-shape", lambda: nf.attention_naive(Z, np.eye(6), V, n), ValueError,
          r"W has shape \(6, 6\), expected \(4, 4\)"),
    _case("attention_naive", "n_context", lambda: nf.attention_naive(Z, W, V, 5), ValueError,
          r"n_context = 5 is out of range: Z has N = 5 columns"),
    # ngd_weights(d, eta)
    _case("ngd_weights", "d-float", lambda: nf.ngd_weights(2.0, 0.5), InputTypeError, r"d must be an integer, got 2.0"),
    _case("ngd_weights", "d-bool", lambda: nf.ngd_weights(True, 0.5),
          InputTypeError, r"d must be an integer, got True"),
    _case("ngd_weights", "d-zero", lambda: nf.ngd_weights(0, 0.5), ValueError, r"d must be finite and > 0, got 0"),
    _case("ngd_weights", "d-huge", lambda: nf.ngd_weights(10**5, 0.5), ValueError,
          r"W would have shape \(200000, 200000\) = 40000000000 entries"),
    _case("ngd_weights", "eta-nan", lambda: nf.ngd_weights(2, np.nan),
          ValueError, r"eta must be finite and > 0, got nan"),
    _case("ngd_weights", "eta-string", lambda: nf.ngd_weights(2, "0.5"), InputTypeError,
          r"eta must be a real number, got '0.5'"),
    # context_is_inert(W, V, atol)
    _case("context_is_inert", "mismatched", lambda: nf.context_is_inert(np.zeros((4, 4)), np.zeros((2, 2))),
          ValueError, r"V has shape \(2, 2\), expected \(4, 4\) \(the shape of W\)"),
    _case("context_is_inert", "not-square", lambda: nf.context_is_inert(np.zeros((4, 2)), np.zeros((4, 2))),
          ValueError, r"W has shape \(4, 2\), expected \(D, D\) with D = 2d even and positive"),
    _case("context_is_inert", "odd", lambda: nf.context_is_inert(np.zeros((3, 3)), np.zeros((3, 3))), ValueError,
          r"W has shape \(3, 3\), expected \(D, D\)"),
    _case("context_is_inert", "empty", lambda: nf.context_is_inert(np.zeros((0, 0)), np.zeros((0, 0))), ValueError,
          r"W has shape \(0, 0\), expected \(D, D\)"),
    _case("context_is_inert", "batched", lambda: nf.context_is_inert(np.stack([WS, WS]), np.stack([VS, VS])),
          ValueError, r"W has shape \(2, 4, 4\), expected \(D, D\)"),
    _case("context_is_inert", "V-nan", lambda: nf.context_is_inert(WS, _nan(VS)), ValueError,
          r"^V contains a non-finite value \(nan\)"),
    _case("context_is_inert", "W-string", lambda: nf.context_is_inert("W", VS), InputTypeError,
          r"W must be real numeric"),
    _case("context_is_inert", "atol-negative", lambda: nf.context_is_inert(WS, VS, -1e-3), ValueError,
          r"atol must be finite and >= 0, got -0.001"),
    _case("context_is_inert", "atol-nan", lambda: nf.context_is_inert(WS, VS, np.nan), ValueError,
          r"atol must be finite and >= 0, got nan"),
    _case("context_is_inert", "atol-string", lambda: nf.context_is_inert(WS, VS, "0"), InputTypeError,
          r"atol must be a real number, got '0'"),
    # stack_forward(Z, layers, n_context, **kwargs)
    _case("stack_forward", "layers-none", lambda: nf.stack_forward(Z, None, n), InputTypeError,
          r"layers must be a sequence of \(W, V\) pairs, got NoneType"),
    _case("stack_forward", "one-pair-unwrapped", lambda: nf.stack_forward(Z, (W, V), n), InputTypeError,
          r"layers\[0\] must be a \(W, V\) pair, got ndarray of shape \(4, 4\)"),
    _case("stack_forward", "triple", lambda: nf.stack_forward(Z, [(W, V), (W, V, W)], n), InputTypeError,
          r"layers\[1\] must be a \(W, V\) pair, got tuple of length 3"),
    _case("stack_forward", "layer-nan", lambda: nf.stack_forward(Z, [(W, V), (W, _nan(V))], n), ValueError,
          r"^layers\[1\]: V contains a non-finite value \(nan\)"),
    _case("stack_forward", "layer-shape", lambda: nf.stack_forward(Z, [(W, V), (np.eye(2), V)], n), ValueError,
          r"^layers\[1\]: W has shape \(2, 2\), expected \(4, 4\)"),
    _case("stack_forward", "Z-nan-no-layers", lambda: nf.stack_forward(_nan(Z), [], n), ValueError,
          r"^Z contains a non-finite value \(nan\)"),
    _case("stack_forward", "n_context-no-layers", lambda: nf.stack_forward(Z, [], 0), ValueError,
          r"n_context = 0 is out of range"),
    _case("stack_forward", "unknown-option", lambda: nf.stack_forward(Z, [(W, V)], n, causal=True), InputTypeError,
          r"unknown option causal=True: the options are attend_self and query_only"),
    # stack_backward(dout, caches)
    _case("stack_backward", "one-cache-unwrapped", lambda: nf.stack_backward(G, CACHE), InputTypeError,
          r"caches must be a list of AttentionCache, one per layer, got AttentionCache of length 8"),
    _case("stack_backward", "not-a-cache", lambda: nf.stack_backward(G, [CACHES[0], "c"]), InputTypeError,
          r"caches\[1\] must be an AttentionCache from the forward pass, got str"),
    _case("stack_backward", "caches-none", lambda: nf.stack_backward(G, None), InputTypeError,
          r"caches must be a list of AttentionCache, one per layer, got NoneType"),
    _case("stack_backward", "dout-nan", lambda: nf.stack_backward(_nan(G), CACHES), ValueError,
          r"^dout contains a non-finite value \(nan\)"),
    _case("stack_backward", "dout-nan-no-layers", lambda: nf.stack_backward(_nan(G), []), ValueError,
          r"^dout contains a non-finite value \(nan\)"),
    _case("stack_backward", "dout-batch", lambda: nf.stack_backward(np.ones((3, D, N)), CACHES), ValueError,
          r"dout has shape \(3, 4, 5\), expected \(2, 4, 5\)"),
    _case("stack_backward", "dout-vector-no-layers", lambda: nf.stack_backward(np.ones(3), []), ValueError,
          r"dout must have at least 2 dimensions, got shape \(3,\)"),
    # looped_forward(Z, W, V, n_context, depth, attend_self, query_only)
    _case("looped_forward", "Z-nan-depth-0", lambda: nf.looped_forward(_nan(Z), W, V, n, 0), ValueError,
          r"^Z contains a non-finite value \(nan\)"),
    _case("looped_forward", "W-shape-depth-0", lambda: nf.looped_forward(Z, np.eye(2), V, n, 0), ValueError,
          r"W has shape \(2, 2\), expected \(4, 4\)"),
    _case("looped_forward", "n_context-depth-0", lambda: nf.looped_forward(Z, W, V, 7, 0), ValueError,
          r"n_context = 7 is out of range"),
    _case("looped_forward", "query-only-not-inert", lambda: nf.looped_forward(Z, W, V, n, 2, query_only=True),
          ValueError, r"query_only=True would give a different model"),
    # looped_forward_with_cache(Z, W, V, n_context, depth, **kwargs)
    _case("looped_forward_with_cache", "Z-nan-depth-0", lambda: nf.looped_forward_with_cache(_nan(Z), W, V, n, 0),
          ValueError, r"^Z contains a non-finite value \(nan\)"),
    _case("looped_forward_with_cache", "V-nan", lambda: nf.looped_forward_with_cache(Z, W, _nan(V), n, 2),
          ValueError, r"^V contains a non-finite value \(nan\)"),
    _case("looped_forward_with_cache", "unknown-option",
          lambda: nf.looped_forward_with_cache(Z, W, V, n, 2, query_ony=True), InputTypeError,
          r"unknown option query_ony=True"),
    # looped_backward(dout, caches)
    _case("looped_backward", "stack-caches", lambda: nf.looped_backward(G, CACHES), ValueError,
          r"caches\[1\] holds other weights \(W, V\) than caches\[0\]"),
    _case("looped_backward", "dout-nan-depth-0", lambda: nf.looped_backward(_nan(G), []), ValueError,
          r"^dout contains a non-finite value \(nan\)"),
    _case("looped_backward", "dout-inf", lambda: nf.looped_backward(np.inf * G, LOOP_CACHES), ValueError,
          r"^dout contains a non-finite value \(-?inf\)"),
    _case("looped_backward", "dout-batch", lambda: nf.looped_backward(G[:1], LOOP_CACHES), ValueError,
          r"dout has shape \(1, 4, 5\), expected \(2, 4, 5\)"),
    _case("looped_backward", "caches-string", lambda: nf.looped_backward(G, "caches"), InputTypeError,
          r"caches\[0\] must be an AttentionCache from the forward pass, got str"),
]

_CONTEXT_REFUSALS = [  # (label, (w, X, y), exception, pattern), for every function of a context
    ("w-none", (None, X, y), InputTypeError, r"w must be an array of shape \(\.\.\., d\), got None"),
    ("w-string", ("w", X, y), InputTypeError, r"w must be real numeric"),
    ("w-nan", (_nan(w), X, y), ValueError, r"^w contains a non-finite value \(nan\)"),
    ("X-inf", (w, np.where(X > 0, np.inf, X), y), ValueError, r"^X contains a non-finite value \(inf\)"),
    ("y-label", (w, X, np.where(y > 0, 2.0, y)), ValueError, r"labels y must be in \{-1, \+1\}, found 2.0"),
    ("w-batch", (np.zeros((3, d)), X, y), ValueError, r"w has shape \(3, 2\) but X has shape \(2, 4, 2\)"),
    ("y-batch", (w, X, y[:1]), ValueError, r"y has shape \(1, 4\) but X has shape \(2, 4, 2\)"),
    ("empty-context", (w, X[:, :0], y[:, :0]), ValueError, r"empty context: X has shape \(2, 0, 2\) with n = 0"),
    ("margins-overflow", (np.full((B, d), 1e308), np.full((B, n, d), 2.0), y), ValueError,
     r"the margins y_i <w, x_i> overflow \(-?inf\): w \(largest entry 1e\+308\) and X \(largest entry 2\)"),
]
_CONTEXT_CALLS = {
    "sink_loss": nf.sink_loss, "sink_weights": nf.sink_weights, "sink_loss_grad": nf.sink_loss_grad,
    "sink_step": lambda w_, X_, y_: nf.sink_step(w_, X_, y_, 0.5),
    "preconditioned_ngd_step": lambda w_, X_, y_: nf.preconditioned_ngd_step(w_, X_, y_, 0.5, P),
}
REFUSED += [_case(name, label, lambda f=f, a=args: f(*a), exc, pattern)
            for name, f in _CONTEXT_CALLS.items() for label, args, exc, pattern in _CONTEXT_REFUSALS]
REFUSED += [
    _case("sink_step", "eta-zero", lambda: nf.sink_step(w, X, y, 0.0),
          ValueError, r"eta must be finite and > 0, got 0.0"),
    _case("sink_step", "eta-bool", lambda: nf.sink_step(w, X, y, True), InputTypeError,
          r"eta must be a real number, got True"),
    _case("preconditioned_ngd_step", "P-shape", lambda: nf.preconditioned_ngd_step(w, X, y, 0.5, np.eye(3)),
          ValueError, r"P has shape \(3, 3\), expected \(2, 2\)"),
    _case("preconditioned_ngd_step", "P-batched", lambda: nf.preconditioned_ngd_step(w, X, y, 0.5, P[None]),
          ValueError, r"P has shape \(1, 2, 2\), expected \(2, 2\)"),
    _case("preconditioned_ngd_step", "P-nan", lambda: nf.preconditioned_ngd_step(w, X, y, 0.5, _nan(P)),
          ValueError, r"^P contains a non-finite value \(nan\)"),
    _case("preconditioned_ngd_step", "P-string", lambda: nf.preconditioned_ngd_step(w, X, y, 0.5, "P"),
          InputTypeError, r"P must be real numeric"),
    _case("preconditioned_ngd_step", "eta-inf", lambda: nf.preconditioned_ngd_step(w, X, y, np.inf, P), ValueError,
          r"eta must be finite and > 0, got inf"),
    _case("preconditioned_weights", "P-shape", lambda: nf.preconditioned_weights(3, 0.5, P), ValueError,
          r"P has shape \(2, 2\), expected \(3, 3\)"),
    _case("preconditioned_weights", "P-inf", lambda: nf.preconditioned_weights(2, 0.5, np.inf * P), ValueError,
          r"^P contains a non-finite value \(-?inf\)"),
    _case("preconditioned_weights", "d-float", lambda: nf.preconditioned_weights(2.0, 0.5, P), InputTypeError,
          r"d must be an integer, got 2.0"),
    _case("preconditioned_weights", "d-huge", lambda: nf.preconditioned_weights(10**5, 0.5, np.eye(2)), ValueError,
          r"W would have shape \(200000, 200000\)"),
    _case("preconditioned_weights", "eta-negative", lambda: nf.preconditioned_weights(2, -0.5, P), ValueError,
          r"eta must be finite and > 0, got -0.5"),
]


@pytest.mark.parametrize("name, call, exc, pattern", REFUSED)
def test_bad_input_is_refused_naming_the_argument(name, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# --- flags: True or False, nothing else ------------------------------------------------------------------

FLAGGED = {  # every public function with a yes/no option, called with one flag set to `value`
    "attention_forward": lambda flag, value: nf.attention_forward(Z, W, V, n, **{flag: value}),
    "attention_naive": lambda flag, value: nf.attention_naive(Z, W, V, n, **{flag: value}),
    "stack_forward": lambda flag, value: nf.stack_forward(Z, [(WS, VS)], n, **{flag: value}),
    "stack_forward (no layers)": lambda flag, value: nf.stack_forward(Z, [], n, **{flag: value}),
    "looped_forward": lambda flag, value: nf.looped_forward(Z, WS, VS, n, 2, **{flag: value}),
    "looped_forward (depth 0)": lambda flag, value: nf.looped_forward(Z, WS, VS, n, 0, **{flag: value}),
    "looped_forward_with_cache": lambda flag, value: nf.looped_forward_with_cache(Z, WS, VS, n, 2, **{flag: value}),
}


@pytest.mark.parametrize("function", sorted(FLAGGED))
@pytest.mark.parametrize("flag", ["attend_self", "query_only"])
@pytest.mark.parametrize("value", ["no", "False", "", 1, 0, None, 1.0, np.array(True)])
def test_flags_must_be_bools(function, flag, value):
    with pytest.raises(InputTypeError, match=rf"^{flag} must be True or False, got "):
        FLAGGED[function](flag, value)


@pytest.mark.parametrize("function", sorted(FLAGGED))
def test_numpy_bools_are_bools(function):
    for flag in ("attend_self", "query_only"):
        a, b = FLAGGED[function](flag, np.True_), FLAGGED[function](flag, True)
        first = lambda r: r[0] if isinstance(r, tuple) else r  # noqa: E731
        np.testing.assert_array_equal(first(a), first(b))


def test_every_flag_of_the_three_modules_is_covered():
    """A new public function with a bool option must be added to FLAGGED."""
    for name in PUBLIC:
        params = inspect.signature(getattr(nf, name)).parameters.values()
        if any(p.annotation in ("bool", bool) and p.default in (True, False) for p in params):
            assert name in FLAGGED, name


# --- depth: integers in [0, MAX_DEPTH] for every looped function ----------------------------------------

LOOPED = {
    "looped_forward": lambda depth: nf.looped_forward(Z, W, V, n, depth),
    "looped_forward (query only)": lambda depth: nf.looped_forward(Z, WS, VS, n, depth, query_only=True),
    "looped_forward_with_cache": lambda depth: nf.looped_forward_with_cache(Z, W, V, n, depth),
}


@pytest.mark.parametrize("function", sorted(LOOPED))
@pytest.mark.parametrize("depth, exc, pattern", [
    (2.0, InputTypeError, r"depth must be an integer, got 2.0"),
    (True, InputTypeError, r"depth must be an integer, got True"),
    (np.True_, InputTypeError, r"depth must be an integer, got np.True_|depth must be an integer, got True"),
    ("2", InputTypeError, r"depth must be an integer, got '2'"),
    (None, InputTypeError, r"depth must be an integer, got None"),
    (-1, ValueError, r"depth must be finite and >= 0, got -1"),
    (MAX_DEPTH + 1, ValueError, rf"depth = {MAX_DEPTH + 1} is too large: the limit is {MAX_DEPTH}"),
    (10**30, ValueError, r"depth = 1000000000000000000000000000000 is too large"),
])
def test_bad_depths_are_refused(function, depth, exc, pattern):
    with pytest.raises(exc, match=pattern):
        LOOPED[function](depth)


@pytest.mark.parametrize("function", sorted(LOOPED))
def test_numpy_integer_depths_are_depths(function):
    first = lambda r: r[0] if isinstance(r, tuple) else r  # noqa: E731
    np.testing.assert_array_equal(first(LOOPED[function](np.int64(2))), first(LOOPED[function](2)))


# --- depth 0 and empty stacks: validated, and always a new array -----------------------------------------


def test_depth_zero_and_empty_stacks_are_the_identity_on_a_new_array():
    for out in (nf.looped_forward(Z, W, V, n, 0), nf.looped_forward(Z, WS, VS, n, 0, query_only=True),
                nf.looped_forward_with_cache(Z, W, V, n, 0)[0], nf.stack_forward(Z, [], n)[0]):
        np.testing.assert_array_equal(out, Z)
        assert out is not Z and not np.shares_memory(out, Z)
    assert nf.looped_forward_with_cache(Z, W, V, n, 0)[1] == [] and nf.stack_forward(Z, [], n)[1] == []
    dZ, grads = nf.stack_backward(G, [])
    np.testing.assert_array_equal(dZ, G)
    assert grads == [] and not np.shares_memory(dZ, G)
    dZ, dW, dV = nf.looped_backward(G, [])
    np.testing.assert_array_equal(dZ, G)
    assert not np.shares_memory(dZ, G) and dW.shape == dV.shape == (D, D) and not dW.any() and not dV.any()
    # depth 0 returns the same kind of result as depth 1: float64 for integer tokens
    assert nf.looped_forward(np.ones((D, N), dtype=int), W, V, n, 0).dtype == np.float64


# --- computed correctly: empty batches, float32, integers, broadcasting -----------------------------------


def _float32(*arrays):
    return [a.astype(np.float32) for a in arrays]


def _dtype_and_close(got, expect, dtype, rtol):
    got = got if isinstance(got, tuple) else (got,)
    expect = expect if isinstance(expect, tuple) else (expect,)
    for g, e in zip(got, expect):
        assert g.dtype == dtype, (g.dtype, dtype)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)


def _flat(result):
    """(dZ, [(dW_1, dV_1), ...]) as one tuple of arrays."""
    return (result[0],) + tuple(g for pair in result[1] for g in pair)


Z32, W32, V32, G32, X32, y32, w32, P32 = _float32(Z, W, V, G, X, y, w, P)
_, CACHE32 = nf.attention_forward(Z32, W32, V32, n)
_, LOOP_CACHES32 = nf.looped_forward_with_cache(Z32, W32, V32, n, 2)
_, STACK_CACHES32 = nf.stack_forward(Z32, [(W32, V32), (V32, W32)], n)
S = _rng.standard_normal((B, n, 3))

# float32 in (every array argument), float32 out, close to the float64 result
FLOAT32 = {
    "softmax": (lambda: nf.softmax(S.astype(np.float32)), lambda: nf.softmax(S)),
    "softmax_backward": (lambda: nf.softmax_backward(S.astype(np.float32), nf.softmax(S.astype(np.float32))),
                         lambda: nf.softmax_backward(S, nf.softmax(S))),
    "attention_forward": (lambda: nf.attention_forward(Z32, W32, V32, n)[0], lambda: OUT),
    "attention_backward": (lambda: nf.attention_backward(G32, CACHE32), lambda: nf.attention_backward(G, CACHE)),
    "attention_naive": (lambda: nf.attention_naive(Z32, W32, V32, n), lambda: OUT),
    "stack_forward": (lambda: nf.stack_forward(Z32, [(W32, V32), (V32, W32)], n)[0],
                      lambda: nf.stack_forward(Z, [(W, V), (V, W)], n)[0]),
    "stack_backward": (lambda: _flat(nf.stack_backward(G32, STACK_CACHES32)),
                       lambda: _flat(nf.stack_backward(G, CACHES))),
    "looped_forward": (lambda: nf.looped_forward(Z32, W32, V32, n, 2), lambda: nf.looped_forward(Z, W, V, n, 2)),
    "looped_forward_with_cache": (lambda: nf.looped_forward_with_cache(Z32, W32, V32, n, 2)[0],
                                  lambda: nf.looped_forward(Z, W, V, n, 2)),
    "looped_backward": (lambda: nf.looped_backward(G32, LOOP_CACHES32), lambda: nf.looped_backward(G, LOOP_CACHES)),
    "sink_loss": (lambda: nf.sink_loss(w32, X32, y32), lambda: nf.sink_loss(w, X, y)),
    "sink_weights": (lambda: nf.sink_weights(w32, X32, y32), lambda: nf.sink_weights(w, X, y)),
    "sink_loss_grad": (lambda: nf.sink_loss_grad(w32, X32, y32), lambda: nf.sink_loss_grad(w, X, y)),
    "sink_step": (lambda: nf.sink_step(w32, X32, y32, 0.5), lambda: nf.sink_step(w, X, y, 0.5)),
    "preconditioned_ngd_step": (lambda: nf.preconditioned_ngd_step(w32, X32, y32, 0.5, P32),
                                lambda: nf.preconditioned_ngd_step(w, X, y, 0.5, P)),
}
# documented float64 whatever the input: the weight constructors, and a float64 preconditioner
FLOAT64 = {
    "ngd_weights": lambda: nf.ngd_weights(2, 0.5),
    "preconditioned_weights": lambda: nf.preconditioned_weights(2, np.float32(0.5), P32),
    "preconditioned_ngd_step (float64 P)": lambda: nf.preconditioned_ngd_step(w32, X32, y32, 0.5, P),
    "softmax (integers)": lambda: nf.softmax(np.array([[1], [2]])),
    "attention_forward (integer tokens)": lambda: nf.attention_forward(np.ones((D, N), dtype=int), W, V, n)[0],
}


@pytest.mark.parametrize("name", sorted(FLOAT32))
def test_float32_in_gives_float32_out(name):
    low, high = FLOAT32[name]
    _dtype_and_close(low(), high(), np.float32, 1e-4)


@pytest.mark.parametrize("name", sorted(FLOAT64))
def test_documented_float64_results(name):
    result = FLOAT64[name]()
    for a in result if isinstance(result, tuple) else (result,):
        assert a.dtype == np.float64


EMPTY_Z, EMPTY_X, EMPTY_y, EMPTY_w = np.zeros((0, D, N)), np.zeros((0, n, d)), np.ones((0, n)), np.zeros((0, d))
_, EMPTY_CACHE = nf.attention_forward(EMPTY_Z, W, V, n)
_, EMPTY_LOOP = nf.looped_forward_with_cache(EMPTY_Z, W, V, n, 2)
# an empty batch (no tasks): computed, with the right shapes, and zero weight gradients
EMPTY_BATCH = {
    "softmax": (lambda: nf.softmax(np.zeros((0, 3, 2))), [(0, 3, 2)]),
    "softmax (empty query axis)": (lambda: nf.softmax(np.zeros((3, 0))), [(3, 0)]),
    "softmax_backward": (lambda: nf.softmax_backward(np.zeros((0, 3, 2)), np.zeros((0, 3, 2))), [(0, 3, 2)]),
    "attention_forward": (lambda: nf.attention_forward(EMPTY_Z, W, V, n)[0], [(0, D, N)]),
    "attention_backward": (lambda: nf.attention_backward(EMPTY_Z, EMPTY_CACHE), [(0, D, N), (D, D), (D, D)]),
    "attention_naive": (lambda: nf.attention_naive(EMPTY_Z, W, V, n), [(0, D, N)]),
    "stack_forward": (lambda: nf.stack_forward(EMPTY_Z, [(W, V)], n)[0], [(0, D, N)]),
    "stack_backward": (lambda: nf.stack_backward(EMPTY_Z, EMPTY_LOOP)[1][0], [(D, D), (D, D)]),
    "looped_forward": (lambda: nf.looped_forward(EMPTY_Z, W, V, n, 3), [(0, D, N)]),
    "looped_forward_with_cache": (lambda: nf.looped_forward_with_cache(EMPTY_Z, W, V, n, 2)[0], [(0, D, N)]),
    "looped_backward": (lambda: nf.looped_backward(EMPTY_Z, EMPTY_LOOP), [(0, D, N), (D, D), (D, D)]),
    "sink_loss": (lambda: nf.sink_loss(EMPTY_w, EMPTY_X, EMPTY_y), [(0,)]),
    "sink_weights": (lambda: nf.sink_weights(EMPTY_w, EMPTY_X, EMPTY_y), [(0, n)]),
    "sink_loss_grad": (lambda: nf.sink_loss_grad(EMPTY_w, EMPTY_X, EMPTY_y), [(0, d)]),
    "sink_step": (lambda: nf.sink_step(EMPTY_w, EMPTY_X, EMPTY_y, 0.5), [(0, d)]),
    "preconditioned_ngd_step": (lambda: nf.preconditioned_ngd_step(EMPTY_w, EMPTY_X, EMPTY_y, 0.5, P), [(0, d)]),
}


@pytest.mark.parametrize("name", sorted(EMPTY_BATCH))
def test_empty_batches_are_computed(name):
    call, shapes = EMPTY_BATCH[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" or division warnings either
        result = call()
    result = result if isinstance(result, tuple) else (result,)
    assert [r.shape for r in result] == shapes
    assert all(not r.any() for r in result if r.shape in ((D, D),))  # nothing to sum: zero gradients


def test_one_iterate_broadcasts_against_a_batch_of_contexts():
    """w of shape (d,) against X (B, n, d): each task's result equals the call on that task alone."""
    w0 = w[0]
    for name, f in _CONTEXT_CALLS.items():
        together = f(w0, X, y)
        for b in range(B):
            np.testing.assert_allclose(together[b], f(w0, X[b], y[b]), rtol=1e-14, atol=1e-15, err_msg=name)


def test_every_public_function_is_swept():
    """Each public function of the three modules is refused bad input here and computes the edge cases it accepts."""
    refused = {p.values[0] for p in REFUSED}
    assert set(PUBLIC) <= refused, set(PUBLIC) - refused
    computed = set(FLOAT32) | {k.split(" ")[0] for k in FLOAT64} | {k.split(" ")[0] for k in EMPTY_BATCH}
    assert set(PUBLIC) - {"context_is_inert"} <= computed, set(PUBLIC) - computed


def test_context_is_inert_takes_any_real_dtype_and_returns_a_bool():
    for Wc, Vc in ((WS, VS), (WS.astype(np.float32), VS.astype(np.float32)), (WS.astype(int), VS.astype(int))):
        assert nf.context_is_inert(Wc, Vc, atol=0) is True
    assert nf.context_is_inert(W, V) is False
