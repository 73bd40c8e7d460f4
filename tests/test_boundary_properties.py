"""The whole public boundary under random input: refused by name, or a finite result of the documented shape.

For every public function of ``ngdformer`` (``ngdformer.__all__`` and the public functions of
``ngdformer.fast``) that takes arrays, hypothesis draws valid arguments (small random shapes, valid
contexts, separable where the function needs it) and then spoils one array argument:

- ``dtype``: float32, int, bool, complex, object or str;
- ``nonfinite``: NaN, inf or -inf at a random position;
- ``shape``: one axis of size 0, the batch dimensions dropped (1-D where a batch is expected), a batch
  (or core) dimension of another size, or an extra leading dimension.

The property, with every warning turned into an error: the call either raises ``ValueError`` or
``TypeError`` whose message names one of the function's parameters, or returns finite outputs of the
shape the documented shapes give for the (spoiled) inputs, in float64 (float32 only when every array
given was float32). Valid arguments must give such a result. Example counts come from the hypothesis
profile (``tests/conftest.py``).

A few functions document a non-finite result on purpose (a gradient checker's ``inf`` for NaN input, a
gap against a zero reference, a diverging loop): :data:`NONFINITE` lists each, with the outputs and
inputs it covers and the sentence of the function's docstring that says so. Any other non-finite
output fails.
"""

from __future__ import annotations

import inspect
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Callable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import assume, given, strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import ngdformer as nf  # noqa: E402
from ngdformer import fast  # noqa: E402


class Incompatible(Exception):
    """The inputs contradict the documented shapes, so the function had to refuse them."""


def need(condition, what: str) -> None:
    if not condition:
        raise Incompatible(what)


@dataclass
class Spec:
    """How to refill an array argument of a new shape: ``kind`` of values, ``core`` trailing non-batch dims."""

    kind: str  #: "real", "labels", "unit", "psd" or "depths"
    core: int  #: number of trailing core dimensions; the leading ones are batch dimensions


@dataclass
class Case:
    """One public function: how to draw valid arguments, which of them are arrays, what it must return."""

    func: Callable  #: the public function (its signature gives the names a message may use)
    build: Callable  #: (pick, rng) -> dict of valid arguments
    arrays: dict  #: argument name -> Spec, the arrays that get spoiled
    expect: Callable  #: arguments -> list of output shapes; raises Incompatible for inputs it must refuse
    call: Callable | None = None  #: arguments -> result (default ``func(**args)``)
    outputs: Callable | None = None  #: result -> list of outputs to check (default ``[result]``)
    names: tuple = ()  #: names a message may use besides the parameters (e.g. ``W`` inside ``layers``)
    assertion_is_a_result: bool = False  #: an AssertionError on real numeric input is a documented outcome
    f32: Callable | None = None  #: arguments -> per output, may it be float32 (default: if every array is)
    params: tuple = field(default=())
    name: str = ""  #: the key in CASES

    def __post_init__(self):
        own = [p for p in inspect.signature(self.func).parameters if p not in ("kwargs",)]
        self.params = tuple(own) + tuple(self.names)


# ------------------------------------------------------------------------------------------ drawing


def _unit(g):
    norm = np.linalg.norm(g, axis=-1, keepdims=True)
    return g / np.where(norm > 0, norm, 1.0)


def _fill(spec: Spec, shape: tuple, rng) -> np.ndarray:
    """Fresh values of ``spec.kind`` in ``shape``: a refilled argument is wrong only in its shape."""
    if spec.kind == "labels":
        return rng.choice([-1.0, 1.0], size=shape)
    if spec.kind == "unit" and len(shape):
        return _unit(rng.standard_normal(shape))
    if spec.kind == "psd" and len(shape) >= 2 and shape[-1] == shape[-2]:
        A = rng.standard_normal(shape)
        return A @ np.swapaxes(A, -1, -2) / max(shape[-1], 1)
    if spec.kind == "depths":
        return np.sort(rng.integers(0, 4, size=shape), axis=-1) if len(shape) else rng.integers(0, 4, size=shape)
    return rng.standard_normal(shape)


class Pick:
    """Every choice of one example, read from the bytes hypothesis drew for it (one draw per example).

    A byte b picks option ``b % len(options)``, so shrinking the bytes toward zero shrinks every
    choice toward its first option: the smallest shapes, the first argument, the first dtype. One
    ``st.binary`` draw costs a third of a dozen ``st.integers`` draws, which keeps the sweep of the
    whole boundary within a minute.
    """

    def __init__(self, raw: bytes):
        self.raw, self.k = raw, 0

    def byte(self) -> int:
        self.k += 1
        return self.raw[(self.k - 1) % len(self.raw)]

    def int(self, lo: int, hi: int) -> int:
        return lo + self.byte() % (hi - lo + 1)

    def choice(self, options):
        options = list(options)
        return options[self.byte() % len(options)]

    def bool(self) -> bool:
        return self.byte() % 2 == 1

    def lead(self, max_dims: int = 2) -> tuple:
        """A batch shape of at most ``max_dims`` dimensions of sizes 1..3."""
        return tuple(self.int(1, 3) for _ in range(self.int(0, max_dims)))

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.byte() for _ in range(4)])


POOL = 48  #: bytes drawn per example


def _broadcastable(pick, lead: tuple) -> tuple:
    """``lead`` itself, its trailing part, or ones in its place: shapes that broadcast against it."""
    return pick.choice([lead, lead[1:], (1,) * len(lead)])


def _context(pick, rng, *, separable: bool = False, max_lead: int = 2) -> dict:
    """``w`` (..., d), ``X`` (..., n, d), ``y`` (..., n); with ``separable``, ``w_star`` separates with margin 0.2."""
    lead, n, d = pick.lead(max_lead), pick.int(1, 4), pick.int(1, 3)
    X = rng.standard_normal(lead + (n, d))
    if separable:
        w_star = _unit(rng.standard_normal(lead + (d,)))
        s = np.einsum("...nd,...d->...n", X, w_star)
        sign = np.where(s >= 0, 1.0, -1.0)
        X = X + (np.maximum(0.2 - np.abs(s), 0.0) * sign)[..., None] * w_star[..., None, :]
        y = sign
    else:
        w_star, y = None, rng.choice([-1.0, 1.0], size=lead + (n,))
    w = rng.standard_normal(_broadcastable(pick, lead) + (d,))
    return {"w": w, "X": X, "y": y, "w_star": w_star}


def _layer(pick, rng, *, inert: bool = False, scale: float = 0.3) -> dict:
    """Tokens ``Z`` (..., D, N), weights ``W``, ``V`` (D, D) of entries ~ ``scale`` and a valid ``n_context``."""
    lead, d, n = pick.lead(), pick.int(1, 2), pick.int(1, 3)
    D, N = 2 * d, n + 1
    if inert:
        W, V = nf.ngd_weights(d, pick.choice([0.25, 1.0]))
    else:
        W, V = scale * rng.standard_normal((2, D, D))
    return {"Z": rng.standard_normal(lead + (D, N)), "W": W, "V": V, "n_context": pick.int(1, N - 1)}


# ------------------------------------------------------------------------------------------ expecting


def _shape(a) -> tuple:
    return np.shape(a)


def _context_lead(w, X, y) -> tuple:
    """Batch shape of a context call: ``w`` (..., d), ``X`` (..., n, d), ``y`` (..., n)."""
    need(np.ndim(X) >= 2 and np.ndim(w) >= 1, "X needs (n, d), w needs (d,)")
    need(_shape(y) == _shape(X)[:-1], "y.shape == X.shape[:-1]")
    need(_shape(w)[-1] == _shape(X)[-1], "w and X share d")
    try:
        return np.broadcast_shapes(_shape(w)[:-1], _shape(X)[:-2])
    except ValueError:
        raise Incompatible("w and X batch shapes do not broadcast") from None


def _ctx_n_d(args) -> tuple:
    lead = _context_lead(args.get("w", args.get("w0")), args["X"], args["y"])
    return lead, _shape(args["X"])[-2], _shape(args["X"])[-1]


def _tokens(args) -> tuple:
    """(D, N) of a layer call, checking Z, W, V and n_context against each other."""
    Z = args["Z"]
    need(np.ndim(Z) >= 2, "Z needs (D, N)")
    D, N = _shape(Z)[-2:]
    need(D > 0 and D % 2 == 0, "D = 2d even and positive")
    for name in ("W", "V"):
        if name in args:
            need(_shape(args[name]) == (D, D), f"{name} is (D, D)")
    if args.get("n_context") != 0:  # 0: no context needed
        need(1 <= args.get("n_context", 1) <= N - 1, "1 <= n_context <= N - 1")
    return D, N


def _pair(u, v) -> tuple:
    need(np.ndim(u) >= 1 and np.ndim(v) >= 1 and _shape(u)[-1] == _shape(v)[-1], "u and v share d")
    try:
        return np.broadcast_shapes(_shape(u)[:-1], _shape(v)[:-1])
    except ValueError:
        raise Incompatible("u and v batch shapes do not broadcast") from None


def _square_even(M, name) -> int:
    need(np.ndim(M) == 2 and _shape(M)[0] == _shape(M)[1] and _shape(M)[0] > 0 and _shape(M)[0] % 2 == 0,
         f"{name} is (2d, 2d)")
    return _shape(M)[0]


def _weights_pair(args) -> int:
    D = _square_even(args["W"], "W")
    need(_shape(args["V"]) == (D, D), "V has W's shape")
    return D


# ------------------------------------------------------------------------------------------ the cases

CASES: dict[str, Case] = {}


def case(name: str, **kw) -> None:
    CASES[name] = Case(name=name, **kw)


CTX = {"w": Spec("real", 1), "X": Spec("real", 2), "y": Spec("labels", 1)}
CTX0 = {"w0": Spec("real", 1), "X": Spec("real", 2), "y": Spec("labels", 1)}
LAYER = {"Z": Spec("real", 2), "W": Spec("real", 2), "V": Spec("real", 2)}
WV = {"W": Spec("real", 2), "V": Spec("real", 2)}


def _wxy(pick, rng, **kw):
    c = _context(pick, rng, **kw)
    return {"w": c["w"], "X": c["X"], "y": c["y"]}


def _ctx_case(name, func, out, *, extra=None, separable=False):
    """A function of (w, X, y[, eta]) whose output shape is ``out(lead, n, d)``."""
    def build(pick, rng):
        args = _wxy(pick, rng, separable=separable)
        if extra == "eta":
            args["eta"] = pick.choice([0.1, 1.0])
        return args
    case(name, func=func, build=build, arrays=CTX, expect=lambda a: [out(*_ctx_n_d(a))])


for _name, _out in (("margins", lambda lead, n, d: lead + (n,)), ("exp_loss", lambda lead, n, d: lead),
                    ("exp_log_loss", lambda lead, n, d: lead), ("logistic_loss", lambda lead, n, d: lead),
                    ("exp_loss_grad", lambda lead, n, d: lead + (d,)),
                    ("logistic_loss_grad", lambda lead, n, d: lead + (d,)),
                    ("ngd_coefficients", lambda lead, n, d: lead + (n,)),
                    ("normalized_margin", lambda lead, n, d: lead), ("accuracy", lambda lead, n, d: lead),
                    ("sink_weights", lambda lead, n, d: lead + (n,)), ("sink_loss", lambda lead, n, d: lead),
                    ("sink_loss_grad", lambda lead, n, d: lead + (d,)), ("squared_loss", lambda lead, n, d: lead),
                    ("squared_loss_grad", lambda lead, n, d: lead + (d,)),
                    ("squared_hinge_loss", lambda lead, n, d: lead),
                    ("squared_hinge_loss_grad", lambda lead, n, d: lead + (d,))):
    _ctx_case(_name, getattr(nf, _name), _out)
for _name in ("gd_step", "ngd_step", "sink_step"):
    _ctx_case(_name, getattr(nf, _name), lambda lead, n, d: lead + (d,), extra="eta")


def _trajectory_case(name):
    def build(pick, rng):
        c = _context(pick, rng)
        return {"w0": c["w"], "X": c["X"], "y": c["y"], "eta": 0.5, "steps": pick.int(0, 3)}
    case(name, func=getattr(nf, name), build=build, arrays=CTX0,
         expect=lambda a: [(a["steps"] + 1,) + _ctx_n_d(a)[0] + (_shape(a["X"])[-1],)])


_trajectory_case("gd")
_trajectory_case("ngd")

case("sigmoid", func=nf.sigmoid, build=lambda pick, rng: {"z": 5 * rng.standard_normal(pick.lead(3))},
     arrays={"z": Spec("real", 0)}, expect=lambda a: [_shape(a["z"])])


def _separable(pick, rng):
    c = _context(pick, rng, separable=True, max_lead=1)
    return {"X": c["X"], "y": c["y"]}


def _mm_shape(a):
    lead, n, d = _context_lead(np.zeros(_shape(a["X"])[-1:]), a["X"], a["y"]), *_shape(a["X"])[-2:]
    return lead, n, d


case("max_margin", func=nf.max_margin, build=_separable, arrays={"X": Spec("real", 2), "y": Spec("labels", 1)},
     expect=lambda a: [_mm_shape(a)[0] + (_mm_shape(a)[2],)])
case("max_margin_dual", func=nf.max_margin_dual, build=_separable,
     arrays={"X": Spec("real", 2), "y": Spec("labels", 1)},
     expect=lambda a: [_mm_shape(a)[0] + (_mm_shape(a)[2],), _mm_shape(a)[0] + (_mm_shape(a)[1],)],
     outputs=lambda r: [r.w, r.a])


def _kkt_build(pick, rng):
    args = _wxy(pick, rng)
    args["a"] = np.abs(rng.standard_normal(_shape(args["X"])[:-1]))
    return args


def _kkt_expect(a):
    lead = _ctx_n_d(a)[0]
    need(np.ndim(a["a"]) >= 1 and _shape(a["a"])[-1] == _shape(a["X"])[-2], "a is (..., n)")
    try:
        lead = np.broadcast_shapes(lead, _shape(a["a"])[:-1])
    except ValueError:
        raise Incompatible("a does not broadcast") from None
    return [lead] * 5


case("kkt_residuals", func=nf.kkt_residuals, build=_kkt_build, arrays=CTX | {"a": Spec("real", 1)},
     expect=_kkt_expect, outputs=lambda r: [r[k] for k in ("primal", "dual", "stationarity", "slackness", "gap")])


def _precond_build(pick, rng):
    args = _wxy(pick, rng)
    d = _shape(args["X"])[-1]
    return args | {"eta": 0.5, "P": np.eye(d) + 0.1 * rng.standard_normal((d, d))}


def _precond_expect(a):
    lead, n, d = _ctx_n_d(a)
    need(_shape(a["P"]) == (d, d), "P is (d, d)")
    return [lead + (d,)]


case("preconditioned_ngd_step", func=nf.preconditioned_ngd_step, build=_precond_build,
     arrays=CTX | {"P": Spec("real", 2)}, expect=_precond_expect)


def _pw_build(pick, rng):
    d = pick.int(1, 3)
    return {"d": d, "eta": 0.5, "P": rng.standard_normal((d, d))}


def _pw_expect(a):
    need(_shape(a["P"]) == (a["d"], a["d"]), "P is (d, d)")
    return [(2 * a["d"], 2 * a["d"])] * 2


case("preconditioned_weights", func=nf.preconditioned_weights, build=_pw_build, arrays={"P": Spec("real", 2)},
     expect=_pw_expect, outputs=list)

# --- data


def _st_build(pick, rng):
    d = pick.int(1, 3)
    A = rng.standard_normal((d, d))
    return {"rng": np.random.default_rng(0), "batch": pick.int(1, 3), "n": pick.int(1, 4), "d": d,
            "cov": A @ A.T}


def _st_expect(a):
    need(_shape(a["cov"]) == (a["d"], a["d"]), "cov is (d, d)")
    B, n, d = a["batch"], a["n"], a["d"]
    return [(B, n, d), (B, n), (B, d)]


case("sample_tasks", func=nf.sample_tasks, build=_st_build, arrays={"cov": Spec("psd", 2)}, expect=_st_expect,
     outputs=list)


def _sp_build(pick, rng):
    B, d = pick.int(1, 3), pick.int(1, 3)
    A = rng.standard_normal((d, d))
    return {"rng": np.random.default_rng(0), "w_star": _unit(rng.standard_normal((B, d))),
            "n": pick.int(1, 4), "margin": pick.choice([0.0, 0.5]), "cov": A @ A.T}


def _sp_expect(a):
    need(np.ndim(a["w_star"]) == 2, "w_star is (B, d)")
    B, d = _shape(a["w_star"])
    need(_shape(a["cov"]) == (d, d), "cov is (d, d)")
    return [(B, a["n"], d), (B, a["n"])]


case("sample_points", func=nf.sample_points, build=_sp_build, arrays={"w_star": Spec("unit", 1), "cov": Spec("psd", 2)},
     expect=_sp_expect, outputs=list)


def _embed_build(pick, rng):
    c = _context(pick, rng)
    return {"X": c["X"], "y": c["y"], "w0": c["w"]}


def _embed_expect(a):
    lead, n, d = _ctx_n_d(a)
    return [lead + (2 * d, n + 1)]


case("embed", func=nf.embed, build=_embed_build, arrays=CTX0, expect=_embed_expect)
def _read_weights_expect(a):
    D, N = _tokens({"Z": a["Z"], "n_context": 0})  # a query column alone is enough
    need(N >= 1, "Z has a (query) column")
    return [_shape(a["Z"])[:-2] + (D // 2,)]


case("read_weights", func=nf.read_weights, build=lambda pick, rng: {"Z": _layer(pick, rng)["Z"]},
     arrays={"Z": Spec("real", 2)}, expect=_read_weights_expect)

# --- the layer, the construction and their fast twins


def _softmax_build(pick, rng):
    return {"s": rng.standard_normal(pick.lead() + (pick.int(1, 3), pick.int(1, 3)))}


def _softmax_backward_build(pick, rng):
    p = nf.softmax(_softmax_build(pick, rng)["s"])
    return {"dp": rng.standard_normal(p.shape), "p": p}


def _sb_expect(a):
    need(np.ndim(a["p"]) >= 1 and _shape(a["dp"]) == _shape(a["p"]), "dp has p's shape")
    need(np.ndim(a["p"]) == 1 or _shape(a["p"])[-2] > 0, "keys axis not empty")
    return [_shape(a["p"])]


case("softmax", func=nf.softmax, build=_softmax_build, arrays={"s": Spec("real", 2)},
     expect=lambda a: [_shape(a["s"])] if np.ndim(a["s"]) >= 1 else need(False, "s needs an axis"))
case("softmax_backward", func=nf.softmax_backward, build=_softmax_backward_build,
     arrays={"dp": Spec("real", 2), "p": Spec("real", 2)}, expect=_sb_expect)


def _forward_build(pick, rng):
    inert = pick.bool()
    args = _layer(pick, rng, inert=inert)
    return args | {"attend_self": pick.bool(), "query_only": pick.bool()}


def _first(r):
    return [r[0]]


for _name, _func in (("attention_forward", nf.attention_forward), ("fast.attention_forward", fast.attention_forward)):
    case(_name, func=_func, build=_forward_build, arrays=LAYER, expect=lambda a: [_tokens(a) and _shape(a["Z"])],
         outputs=_first)
case("attention_naive", func=nf.attention_naive, build=_forward_build, arrays=LAYER,
     expect=lambda a: [_tokens(a) and _shape(a["Z"])])


def _backward_build(forward):
    def build(pick, rng):
        args = _forward_build(pick, rng)
        out, cache = forward(**args)
        return {"dout": rng.standard_normal(out.shape), "cache": cache}
    return build


def _backward_expect(a):
    Z = a["cache"].Z
    need(_shape(a["dout"]) == Z.shape, "dout has Z's shape")
    return [Z.shape, (Z.shape[-2],) * 2, (Z.shape[-2],) * 2]


for _name, _func, _fwd in (("attention_backward", nf.attention_backward, nf.attention_forward),
                           ("fast.attention_backward", fast.attention_backward, fast.attention_forward)):
    case(_name, func=_func, build=_backward_build(_fwd), arrays={"dout": Spec("real", 2)}, expect=_backward_expect,
         outputs=list)


def _inert_build(pick, rng):
    if pick.bool():
        W, V = nf.ngd_weights(pick.int(1, 2), 0.5)
    else:
        W, V = rng.standard_normal((2, 2, 2))
    return {"W": W, "V": V}


case("context_is_inert", func=nf.context_is_inert, build=_inert_build, arrays=WV,
     expect=lambda a: [_weights_pair(a) and ()], call=lambda a: float(nf.context_is_inert(**a)) if isinstance(
         nf.context_is_inert(**a), bool) else "not a bool")


def _stack_build(pick, rng):
    args = _layer(pick, rng)
    return {"Z": args["Z"], "W": args["W"], "V": args["V"], "n_context": args["n_context"],
            "layers": pick.int(1, 2)}


case("stack_forward", func=nf.stack_forward, build=_stack_build, arrays=LAYER, names=("W", "V"),
     call=lambda a: nf.stack_forward(a["Z"], [(a["W"], a["V"])] * a["layers"], a["n_context"]),
     expect=lambda a: [_tokens(a) and _shape(a["Z"])], outputs=_first)


def _stack_backward_build(pick, rng):
    args = _stack_build(pick, rng)
    out, caches = nf.stack_forward(args["Z"], [(args["W"], args["V"])] * args["layers"], args["n_context"])
    return {"dout": rng.standard_normal(out.shape), "caches": caches}


def _stack_backward_expect(a):
    Z = a["caches"][0].Z
    need(_shape(a["dout"]) == Z.shape, "dout has Z's shape")
    return [Z.shape] + [(Z.shape[-2],) * 2] * (2 * len(a["caches"]))


case("stack_backward", func=nf.stack_backward, build=_stack_backward_build, arrays={"dout": Spec("real", 2)},
     expect=_stack_backward_expect, outputs=lambda r: [r[0]] + [g for pair in r[1] for g in pair])


def _loop_build(pick, rng, *, query_only=True, attend_self=True, min_depth=0):
    inert = pick.bool()
    args = _layer(pick, rng, inert=inert) | {"depth": pick.int(min_depth, 3)}
    if attend_self:
        args["attend_self"] = pick.bool()
    if query_only:
        args["query_only"] = inert and pick.bool()
    return args


for _name, _func in (("looped_forward", nf.looped_forward), ("fast.looped_forward", fast.looped_forward)):
    case(_name, func=_func, build=_loop_build, arrays=LAYER, expect=lambda a: [_tokens(a) and _shape(a["Z"])])
case("fast.query_loop", func=fast.query_loop, build=lambda pick, rng: _loop_build(pick, rng, query_only=False),
     arrays=LAYER, expect=lambda a: [_tokens(a) and _shape(a["Z"])])
for _name, _func in (("looped_forward_with_cache", nf.looped_forward_with_cache),
                     ("fast.looped_forward_with_cache", fast.looped_forward_with_cache)):
    case(_name, func=_func, build=lambda pick, rng: _loop_build(pick, rng, query_only=False), arrays=LAYER,
         expect=lambda a: [_tokens(a) and _shape(a["Z"])], outputs=_first)
for _name, _func in (("looped_trajectory", nf.looped_trajectory), ("fast.looped_trajectory", fast.looped_trajectory)):
    case(_name, func=_func, build=lambda pick, rng: _loop_build(pick, rng, query_only=False), arrays=LAYER,
         expect=lambda a: [(a["depth"] + 1,) + _shape(a["Z"])[:-2] + (_tokens(a)[0] // 2,)])


def _looped_backward_build(forward):
    def build(pick, rng):
        args = _loop_build(pick, rng, query_only=False, min_depth=1)
        out, caches = forward(**args)
        return {"dout": rng.standard_normal(out.shape), "caches": caches}
    return build


def _looped_backward_expect(a):
    Z = a["caches"][0].Z
    need(_shape(a["dout"]) == Z.shape, "dout has Z's shape")
    return [Z.shape, (Z.shape[-2],) * 2, (Z.shape[-2],) * 2]


for _name, _func, _fwd in (("looped_backward", nf.looped_backward, nf.looped_forward_with_cache),
                           ("fast.looped_backward", fast.looped_backward, fast.looped_forward_with_cache)):
    case(_name, func=_func, build=_looped_backward_build(_fwd), arrays={"dout": Spec("real", 2)},
         expect=_looped_backward_expect, outputs=list)

# --- elementwise attention (chapter 10)


def _elementwise_build(pick, rng, scale=0.3):
    return _layer(pick, rng, scale=scale) | {"activation": pick.choice(nf.ACTIVATIONS)}


for _name in ("elementwise_attention_forward", "elementwise_attention_naive"):
    case(_name, func=getattr(nf, _name), build=_elementwise_build, arrays=LAYER,
         expect=lambda a: [_tokens(a) and _shape(a["Z"])],
         outputs=_first if _name.endswith("forward") else None)


def _elementwise_backward_build(pick, rng):
    out, cache = nf.elementwise_attention_forward(**_elementwise_build(pick, rng))
    return {"dout": rng.standard_normal(out.shape), "cache": cache}


case("elementwise_attention_backward", func=nf.elementwise_attention_backward, build=_elementwise_backward_build,
     arrays={"dout": Spec("real", 2)}, expect=_backward_expect, outputs=list)
case("elementwise_trajectory", func=nf.elementwise_trajectory,
     build=lambda pick, rng: _elementwise_build(pick, rng, scale=0.05) | {"depth": pick.int(0, 2)}, arrays=LAYER,
     expect=lambda a: [(a["depth"] + 1,) + _shape(a["Z"])[:-2] + (_tokens(a)[0] // 2,)])
case("elementwise_one_step_loss", func=nf.elementwise_one_step_loss,
     build=lambda pick, rng: _one_step_build(pick, rng) | {"activation": pick.choice(nf.ACTIVATIONS)},
     arrays=LAYER | {"target": Spec("real", 1)}, expect=lambda a: _one_step_expect(a, min_ndim=2), outputs=list)

# --- training and optimizers


def _params_build(pick, rng, *, grads=False, kind=None):
    shapes = [(pick.int(1, 3),) + pick.lead(1) for _ in range(2)]
    args = {f"p{k}": rng.standard_normal(s) for k, s in enumerate(shapes)}
    if grads:
        args |= {f"g{k}": rng.standard_normal(s) for k, s in enumerate(shapes)}
        params = (args["p0"], args["p1"])
        args["state"] = nf.sgd_init(params) if kind == "sgd" else nf.adam_init(params)
        args["lr"] = 0.01
    return args


def _params_expect(a, grads=False):
    shapes = [_shape(a["p0"]), _shape(a["p1"])]
    if grads:
        state = a["state"]
        ref = [np.shape(v) for v in (state.velocity if hasattr(state, "velocity") else state.m)]
        need([_shape(a["g0"]), _shape(a["g1"])] == shapes == ref, "grads, params and state agree")
    return shapes


def _is32(*arrays) -> bool:
    return all(np.asarray(a).dtype == np.float32 for a in arrays)


P2 = {"p0": Spec("real", 0), "p1": Spec("real", 0)}
PER_PARAM = {  # each state array belongs to one parameter: float32 when that parameter (and its gradient) is
    "init": lambda a: [_is32(a["p0"]), _is32(a["p1"])],
    "update": lambda a: [_is32(a["p0"], a["g0"]), _is32(a["p1"], a["g1"])],
}
G2 = P2 | {"g0": Spec("real", 0), "g1": Spec("real", 0)}
case("sgd_init", func=nf.sgd_init, build=_params_build, arrays=P2, expect=_params_expect,
     call=lambda a: nf.sgd_init((a["p0"], a["p1"])), outputs=lambda r: list(r.velocity), f32=PER_PARAM["init"])
case("adam_init", func=nf.adam_init, build=_params_build, arrays=P2, expect=lambda a: _params_expect(a) * 2,
     call=lambda a: nf.adam_init((a["p0"], a["p1"])), outputs=lambda r: list(r.m) + list(r.s),
     f32=lambda a: PER_PARAM["init"](a) * 2)
case("sgd_update", func=nf.sgd_update, build=lambda pick, rng: _params_build(pick, rng, grads=True, kind="sgd"),
     arrays=G2, expect=lambda a: _params_expect(a, grads=True) * 2,
     call=lambda a: nf.sgd_update((a["p0"], a["p1"]), (a["g0"], a["g1"]), a["state"], lr=a["lr"], momentum=0.5),
     outputs=lambda r: list(r[0]) + list(r[1].velocity), f32=lambda a: PER_PARAM["update"](a) * 2)
case("adam_update", func=nf.adam_update, build=lambda pick, rng: _params_build(pick, rng, grads=True, kind="adam"),
     arrays=G2, expect=lambda a: _params_expect(a, grads=True) * 3,
     call=lambda a: nf.adam_update((a["p0"], a["p1"]), (a["g0"], a["g1"]), a["state"], lr=a["lr"]),
     outputs=lambda r: list(r[0]) + list(r[1].m) + list(r[1].s), f32=lambda a: PER_PARAM["update"](a) * 3)


def _one_step_build(pick, rng):
    args = _layer(pick, rng)
    Z = args["Z"] if args["Z"].ndim > 2 else args["Z"][None]  # a batch (B, D, N), B may be a product
    return {"W": args["W"], "V": args["V"], "Z": Z, "target": rng.standard_normal(Z.shape[:-1])}


def _one_step_expect(a, min_ndim=3):
    """``one_step_loss`` takes a batch (B, D, N); ``elementwise_one_step_loss`` also a single (D, N) task."""
    D, N = _tokens({"Z": a["Z"], "W": a["W"], "V": a["V"]})
    need(np.ndim(a["Z"]) >= min_ndim and N >= 2, "Z (B, D, N) with N >= 2")
    need(_shape(a["target"]) == _shape(a["Z"])[:-1], "target (B, D)")
    return [(), (D, D), (D, D)]


case("one_step_loss", func=nf.one_step_loss, build=_one_step_build, arrays=LAYER | {"target": Spec("real", 1)},
     expect=_one_step_expect, outputs=list)


def _wv_build(pick, rng):
    d = pick.int(1, 3)
    return {"W": rng.standard_normal((2 * d, 2 * d)), "V": rng.standard_normal((2 * d, 2 * d))}


case("block_scales", func=nf.block_scales, build=_wv_build, arrays=WV,
     expect=lambda a: [_weights_pair(a) and ()] * 2, outputs=list)
case("distance_to_construction", func=nf.distance_to_construction,
     build=lambda pick, rng: _wv_build(pick, rng) | {"eta": 0.5}, arrays=WV, expect=lambda a: [_weights_pair(a) and ()])


def _off_identity_expect(a):
    need(np.ndim(a["M"]) == 2 and _shape(a["M"])[0] == _shape(a["M"])[1] and _shape(a["M"])[0] > 0, "M is (d, d)")
    return [()]


case("off_identity", func=nf.off_identity,
     build=lambda pick, rng: {"M": rng.standard_normal((pick.int(1, 3),) * 2)}, arrays={"M": Spec("real", 2)},
     expect=_off_identity_expect)


def _end_loss_build(pick, rng):
    B, d, nq = pick.int(1, 3), pick.int(1, 3), pick.int(1, 3)
    objective = pick.choice(["w_star", "logistic", "ngd"])
    args = {"w": rng.standard_normal((B, d)), "objective": objective}
    if objective == "w_star":
        args["w_star"] = _unit(rng.standard_normal((B, d)))
    elif objective == "ngd":
        args["w_ngd"] = rng.standard_normal((B, d))
    else:
        args |= {"X_query": rng.standard_normal((B, nq, d)), "y_query": rng.choice([-1.0, 1.0], (B, nq))}
    return args


def _end_loss_expect(a):
    need(np.ndim(a["w"]) == 2, "w is (B, d)")
    if a["objective"] == "logistic":
        Xq, yq = a["X_query"], a["y_query"]
        need(np.ndim(Xq) == 3 and _shape(Xq)[::2] == _shape(a["w"]) and _shape(yq) == _shape(Xq)[:2],
             "X_query (B, n_q, d), y_query (B, n_q)")
    else:
        need(_shape(a["w_star" if a["objective"] == "w_star" else "w_ngd"]) == _shape(a["w"]), "target is (B, d)")
    return [(), _shape(a["w"])]


END_ARRAYS = {"w": Spec("real", 1), "w_star": Spec("unit", 1), "w_ngd": Spec("real", 1), "X_query": Spec("real", 2),
              "y_query": Spec("labels", 1)}
case("end_loss", func=nf.end_loss, build=_end_loss_build, arrays=END_ARRAYS, expect=_end_loss_expect, outputs=list)


def _looped_loss_build(pick, rng):
    B, d, n = pick.int(1, 2), pick.int(1, 2), pick.int(1, 3)
    W, V = 0.3 * rng.standard_normal((2, 2 * d, 2 * d))
    Z = nf.embed(rng.standard_normal((B, n, d)), rng.choice([-1.0, 1.0], (B, n)), rng.standard_normal((B, d)))
    return {"W": W, "V": V, "Z": Z, "depth": pick.int(1, 2), "objective": "w_star",
            "w_star": _unit(rng.standard_normal((B, d)))}


def _looped_loss_expect(a):
    D, _ = _tokens({"Z": a["Z"], "W": a["W"], "V": a["V"]})
    need(np.ndim(a["Z"]) == 3 and _shape(a["w_star"]) == (_shape(a["Z"])[0], D // 2), "Z (B, D, N), w_star (B, d)")
    return [(), (D, D), (D, D)]


case("looped_loss", func=nf.looped_loss, build=_looped_loss_build, arrays=LAYER | {"w_star": Spec("unit", 1)},
     expect=_looped_loss_expect, outputs=list, names=("w_star",))

# --- evaluation


def _uv_build(pick, rng):
    lead, d = pick.lead(), pick.int(1, 3)
    return {"u": rng.standard_normal(lead + (d,)), "v": rng.standard_normal(_broadcastable(pick, lead) + (d,))}


UV = {"u": Spec("real", 1), "v": Spec("real", 1)}
for _name in ("cosine", "normalized_difference", "relative_difference", "angle"):
    case(_name, func=getattr(nf, _name), build=_uv_build, arrays=UV, expect=lambda a: [_pair(a["u"], a["v"])])


def _ma_build(pick, rng):
    T = pick.int(1, 6)
    return {"a": rng.standard_normal(T), "k": pick.int(1, T)}


def _ma_expect(a):
    need(np.ndim(a["a"]) == 1 and a["k"] <= _shape(a["a"])[0], "a is (T,), k <= T")
    return [(_shape(a["a"])[0] - a["k"] + 1,)]


case("moving_average", func=nf.moving_average, build=_ma_build, arrays={"a": Spec("real", 1)}, expect=_ma_expect)


def _segment_expect(a):
    need(np.ndim(a["w"]) >= 1 and _shape(a["w"])[-1] == 2, "w is (..., 2)")
    return [_shape(a["w"])[:-1] + (2, 2)]


case("separator_segment", func=nf.separator_segment,
     build=lambda pick, rng: {"w": rng.standard_normal(pick.lead() + (2,)), "radius": 1.5},
     arrays={"w": Spec("real", 1)}, expect=_segment_expect)


def _grid_expect(a):
    need(_shape(a["w"]) == (2,), "w is (2,)")
    return [(a["num"], a["num"])] * 3


case("decision_grid", func=nf.decision_grid,
     build=lambda pick, rng: {"w": rng.standard_normal(2), "lim": 2.0, "num": pick.int(2, 5)},
     arrays={"w": Spec("real", 1)}, expect=_grid_expect, outputs=list)


def _mf_build(pick, rng):
    c = _context(pick, rng, separable=True, max_lead=1)
    lead = c["X"].shape[:-2]
    w = rng.standard_normal(pick.choice([lead, (2,) + lead]) + c["X"].shape[-1:])  # or a trajectory
    return {"w": w, "X": c["X"], "y": c["y"], "w_ref": c["w_star"]}


def _mf_expect(a):
    lead = _context_lead(a["w"], a["X"], a["y"])
    need(np.ndim(a["w_ref"]) >= 1 and _shape(a["w_ref"])[-1] == _shape(a["X"])[-1], "w_ref is (..., d)")
    try:
        return [np.broadcast_shapes(lead, _shape(a["w_ref"])[:-1], _shape(a["X"])[:-2])]
    except ValueError:
        raise Incompatible("w_ref does not broadcast") from None


case("margin_fraction", func=nf.margin_fraction, build=_mf_build,
     arrays=CTX | {"w_ref": Spec("unit", 1)}, expect=_mf_expect)

OOD_KEYS = ("diff", "diff_max", "rel", "rel_max", "cos_tf", "cos_ngd", "cos_gd", "acc_tf", "acc_ngd", "acc_gd")


def _ood_build(pick, rng):
    args = _wv_build(pick, rng) if pick.bool() else dict(zip("WV", nf.ngd_weights(pick.int(1, 2),
                                                                                          0.5)))
    args["W"], args["V"] = 0.3 * args["W"], args["V"]
    return args | {"rng": np.random.default_rng(0), "eta": 0.5, "n": pick.int(1, 3),
                   "depth": pick.int(0, 2), "shifts": [nf.Shift("a")], "batch": pick.int(1, 2),
                   "n_test": 3}


def _ood_expect(a):
    _weights_pair(a)
    K = len(nf.ood.default_depths(a["depth"]))
    return [(K,)] * len(OOD_KEYS)


case("evaluate_ood", func=nf.evaluate_ood, build=_ood_build, arrays=WV, expect=_ood_expect,
     outputs=lambda r: [r["a"][k] for k in OOD_KEYS])

# --- plots, on figures that pyplot never sees. Making Axes costs more than drawing on them, so each figure
# is made once and its artists are removed after every call (the colour bar's axes too, whose room is given back).


class Canvas:
    """A figure with ``count`` Axes, reused: :meth:`axes` hands them out stripped of what the last call drew."""

    def __init__(self, count: int):
        self.figure = Figure()
        self.kept = [(ax, ax.get_position()) for ax in np.atleast_1d(self.figure.subplots(1, count))]

    def axes(self):
        for extra in self.figure.axes[len(self.kept):]:  # e.g. a colour bar
            extra.remove()
        for ax, position in self.kept:
            for artist in [*ax.lines, *ax.collections, *ax.images, *ax.texts, *ax.patches]:
                artist.remove()
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            ax.set_position(position)
        return [ax for ax, _ in self.kept]


PAIR, SINGLE = Canvas(2), Canvas(1)


def _heatmap_call(a):
    fig, axes = nf.weight_heatmap(a["W"], a["V"], axes=PAIR.axes())
    return [0.0] if len(axes) == 2 and fig is PAIR.figure else ["not the figure and axes given"]


def _heatmap_build(pick, rng):
    return _wv_build(pick, rng) if pick.bool() else dict(zip("WV", nf.ngd_weights(1, 0.5)))


case("weight_heatmap", func=nf.weight_heatmap, build=_heatmap_build, arrays=WV,
     expect=lambda a: [_weights_pair(a) and ()], call=_heatmap_call, outputs=list)


def _curves_build(pick, rng):
    T = pick.int(1, 4)
    depths = np.sort(rng.integers(0, 100, size=T)).astype(float)
    shape = (T,) if pick.bool() else (T, pick.int(1, 3))
    return {"depths": depths, "values": rng.standard_normal(shape), "band": pick.choice([None, (10, 90)])}


def _curves_expect(a):
    d, v = a["depths"], a["values"]
    need(np.ndim(d) == 1 and _shape(d)[0] > 0, "depths is (T,), T >= 1")
    need(np.ndim(v) in (1, 2) and _shape(v)[0] == _shape(d)[0] and np.size(v) > 0, "values is (T,) or (T, B)")
    return [()]


def _curves_call(a):
    ax = nf.depth_curves(SINGLE.axes()[0], a["depths"], {"NGD": a["values"]}, ylabel="y", band=a["band"])
    return [0.0] if hasattr(ax, "plot") else ["not an Axes"]


case("depth_curves", func=nf.depth_curves, build=_curves_build,
     arrays={"depths": Spec("depths", 1), "values": Spec("real", 2)}, expect=_curves_expect, call=_curves_call,
     outputs=list, names=("curves",))


def _boundaries_build(pick, rng):
    n = pick.int(1, 4)
    return {"X": rng.standard_normal((n, 2)), "y": rng.choice([-1.0, 1.0], n), "w": rng.standard_normal(2)}


def _boundaries_expect(a):
    need(np.ndim(a["X"]) == 2 and _shape(a["X"])[1] == 2 and _shape(a["X"])[0] > 0, "X is (n, 2), n >= 1")
    need(_shape(a["y"]) == _shape(a["X"])[:1] and _shape(a["w"]) == (2,), "y is (n,), w is (2,)")
    return [()]


def _boundaries_call(a):
    ax = nf.decision_boundaries(SINGLE.axes()[0], a["X"], a["y"], {"max margin": a["w"]})
    return [0.0] if hasattr(ax, "plot") else ["not an Axes"]


case("decision_boundaries", func=nf.decision_boundaries, build=_boundaries_build,
     arrays={"X": Spec("real", 2), "y": Spec("labels", 1), "w": Spec("real", 1)}, expect=_boundaries_expect,
     call=_boundaries_call, outputs=list, names=("directions",))

# --- the gradient checker


def _two_build(pick, rng):
    shape = pick.lead(2)
    a = rng.standard_normal(shape)
    return a, a * (1 + 1e-9) + 1e-12


def _broadcast(a, b):
    try:
        return np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise Incompatible("shapes do not broadcast") from None


case("rel_error", func=nf.rel_error, build=lambda pick, rng: dict(zip("ab", _two_build(pick, rng))),
     arrays={"a": Spec("real", 0), "b": Spec("real", 0)}, expect=lambda a: [_broadcast(a["a"], a["b"]) and ()])
case("gradient_errors", func=nf.gradient_errors, build=lambda pick, rng: dict(zip(("num", "ana"),
                                                                                 _two_build(pick, rng))),
     arrays={"num": Spec("real", 0), "ana": Spec("real", 0)}, expect=lambda a: [_broadcast(a["num"], a["ana"])])


def _agc_expect(a):
    need(_shape(a["num"]) == _shape(a["ana"]), "ana has num's shape")
    return []


case("assert_gradients_close", func=nf.assert_gradients_close,
     build=lambda pick, rng: dict(zip(("num", "ana"), _two_build(pick, rng))),
     arrays={"num": Spec("real", 0), "ana": Spec("real", 0)}, expect=_agc_expect,
     outputs=lambda r: [] if r is None else ["returned " + repr(r)], assertion_is_a_result=True)


def _half_square(x):
    return 0.5 * float(np.sum(np.asarray(x) ** 2))


def _x_build(pick, rng, other):
    x = rng.standard_normal(pick.lead(2))
    return {"x": x, other: x.copy()}


def _same_as_x(other, out):
    def expect(a):
        need(_shape(a[other]) == _shape(a["x"]), f"{other} has x's shape")
        return out(a)
    return expect


case("check_directions", func=nf.check_directions, build=lambda pick, rng: _x_build(pick, rng, "grad"),
     arrays={"x": Spec("real", 0), "grad": Spec("real", 0)}, expect=_same_as_x("grad", lambda a: [(2,), (2,)]),
     call=lambda a: nf.check_directions(_half_square, a["x"], a["grad"], np.random.default_rng(0), directions=2),
     outputs=list)
case("directional_derivative", func=nf.directional_derivative, build=lambda pick, rng: _x_build(pick, rng, "v"),
     arrays={"x": Spec("real", 0), "v": Spec("real", 0)}, expect=_same_as_x("v", lambda a: [()]),
     call=lambda a: nf.directional_derivative(_half_square, a["x"], a["v"]))
case("numeric_jacobian", func=nf.numeric_jacobian,
     build=lambda pick, rng: {"x": rng.standard_normal(pick.lead(2))}, arrays={"x": Spec("real", 0)},
     expect=lambda a: [_shape(a["x"]) * 2], call=lambda a: nf.numeric_jacobian(lambda z: 2.0 * z, a["x"]))

# --- persistence

_WORKDIR = tempfile.TemporaryDirectory(prefix="ngdformer-boundary-")


def _save_call(a):
    path = nf.save_weights(f"{_WORKDIR.name}/layer.npz", a["W"], a["V"], eta=0.5)
    return [0.0] if isinstance(path, str) else ["not a path"]


case("save_weights", func=nf.save_weights, build=_wv_build, arrays=WV, expect=lambda a: [_weights_pair(a) and ()],
     call=_save_call, outputs=list)

#: Public functions that take no array argument (sizes, names, paths, a results dict or a Shift list).
NO_ARRAYS = {"sample_w_star", "ngd_weights", "make_optimizer", "train_one_step_layer", "train_looped",
             "default_shifts", "format_ood_table", "load_weights", "gd_weights", "train_elementwise_layer",
             "fast.get_num_threads", "fast.set_num_threads"}


# ------------------------------------------------------------------------------------------ the properties


def _single_letter_named(name: str, message: str) -> bool:
    """A one-letter parameter counts as named only where it reads as a name ("y must", "a[0]", "w = ..."),
    not as the article in "a zero row"."""
    pattern = (rf"(?<![\w'.]){re.escape(name)}(?=\s*(=|\[|\.|'|:|\(|,|<|>)|\s+(has|have|must|contains|is|are|would|"
               rf"could|needs|and|or|of|with|from|do|does)\b)")
    return re.search(pattern, message) is not None


def names_a_parameter(case_: Case, message: str) -> bool:
    for name in case_.params:
        if len(name) == 1:
            if _single_letter_named(name, message):
                return True
        elif re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message):
            return True
    return False


def _call(case_: Case, args: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return case_.call(args) if case_.call else case_.func(**args)


# ------------------------------------------------------------------------------- documented non-finite results


@dataclass
class NonFinite:
    """A non-finite result a function documents on purpose: which outputs, on which inputs, and why.

    ``where`` gives, per output, a boolean mask (broadcasting to the output) of the entries that may
    leave the float range for these arguments, or None where every entry must be finite. ``must`` says
    what those entries are: ``"inf"`` exactly +inf (the documented answer, never NaN or a finite
    number), ``"non-finite"`` inf or NaN (never a finite number), None anything (a loop that may or may
    not have diverged yet). Every entry outside the mask must still be finite.
    """

    reason: str  #: one sentence of the function's docstring that states the allowance
    where: Callable  #: (args, outputs) -> list of masks or None, one per output
    must: str | None


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _any_nonfinite(*arrays) -> np.ndarray:
    return np.array(any(not np.all(np.isfinite(_f64(a))) for a in arrays))


def _ran_on(args, outs) -> list:
    """A trajectory: ``w[0]`` is the input's finite query; an entry that left the float range stays out."""
    bad = ~np.isfinite(np.asarray(outs[0]))
    assert not bad[:1].any(), f"w[0] is not finite: {outs[0]!r}"[:400]
    assert np.all(bad[:-1] <= bad[1:]), f"an entry came back to a finite value after inf or NaN: {outs[0]!r}"[:400]
    return [np.arange(bad.shape[0]).reshape((-1,) + (1,) * (bad.ndim - 1)) >= 1]


#: Non-finite results that are design, not defects. A checker must make ``err <= tol`` fail, and inf
#: does; a relative gap against nothing has no finite value; an unstable loop (chapter 10) diverges.
NONFINITE: dict[str, NonFinite] = {
    "rel_error": NonFinite("A NaN or inf in either array gives inf: a test asserting rel_error(a, b) <= tol then fails",
                           lambda a, outs: [_any_nonfinite(a["a"], a["b"])], must="inf"),
    "gradient_errors": NonFinite("An entry where num or ana is NaN or infinite gets inf (never a pass).",
                                 lambda a, outs: [~np.isfinite(_f64(a["num"])) | ~np.isfinite(_f64(a["ana"]))],
                                 must="inf"),
    "check_directions": NonFinite("A NaN or inf in grad is not refused: it makes the analytic derivatives non-finite, "
                                  "which the check then fails.",
                                  lambda a, outs: [None, _any_nonfinite(a["grad"])], must="non-finite"),
    "relative_difference": NonFinite("Where the reference v is the zero vector the gap is 0 if u is zero too and inf "
                                     "otherwise (no finite number measures a change relative to nothing).",
                                     lambda a, outs: [np.all(_f64(a["v"]) == 0, axis=-1)
                                                      & np.any(_f64(a["u"]) != 0, axis=-1)], must="inf"),
    "elementwise_trajectory": NonFinite("A loop that diverges (a step size above the stability limit, chapter 10) "
                                        "returns inf or NaN from the application where the numbers leave the float "
                                        "range on, without a warning.", _ran_on, must=None),
}


def _check_finite(a: np.ndarray, mask, allowed: NonFinite | None, what: str) -> None:
    """Every entry of ``a`` finite, except where ``allowed`` documents a non-finite one (``mask``)."""
    bad = ~np.isfinite(a)
    if mask is None:
        assert not bad.any(), f"{what} is not finite: {a!r}"[:600]
        return
    mask = np.broadcast_to(mask, a.shape)
    assert not (bad & ~mask).any(), f"{what} is not finite where its docstring does not allow it: {a!r}"[:600]
    if allowed.must == "inf":
        assert np.all(a[mask] == np.inf), f"{what} should be inf where {allowed.reason!r}: {a!r}"[:600]
    elif allowed.must == "non-finite":
        assert bad[mask].all(), f"{what} should be non-finite where {allowed.reason!r}: {a!r}"[:600]


def _check_result(case_: Case, args: dict, result, what: str) -> None:
    try:
        shapes = case_.expect(args)
    except Incompatible as exc:
        pytest.fail(f"{what}: accepted input the documented shapes exclude ({exc}) and returned {result!r}"[:600])
    outs = case_.outputs(result) if case_.outputs else [result]
    assert len(outs) == len(shapes), f"{what}: {len(outs)} outputs, expected {len(shapes)}: {outs!r}"[:600]
    given = [np.asarray(args[k]) for k in case_.arrays if k in args]
    f32 = case_.f32(args) if case_.f32 else [bool(given) and all(a.dtype == np.float32 for a in given)] * len(outs)
    allowed = NONFINITE.get(case_.name)
    masks = allowed.where(args, outs) if allowed else [None] * len(outs)
    for k, (out, shape) in enumerate(zip(outs, shapes)):
        assert not isinstance(out, str), f"{what}: {out}"
        a = np.asarray(out)
        assert a.shape == tuple(shape), f"{what}: output {k} has shape {a.shape}, expected {tuple(shape)}"
        assert a.dtype == np.float64 or (a.dtype == np.float32 and f32[k]), (
            f"{what}: output {k} is {a.dtype}; float64 is expected unless every input it depends on is float32")
        _check_finite(a, masks[k], allowed, f"{what}: output {k}")


def _draw_valid(pick: Pick, case_: Case) -> dict:
    return case_.build(pick, pick.rng())


def describe(args: dict) -> str:
    """The arguments of a call, arrays as dtype and shape, for a failure message."""
    def one(v):
        if isinstance(v, np.ndarray):
            return f"{v.dtype}{list(v.shape)}"
        return type(v).__name__ if hasattr(v, "_fields") or isinstance(v, (list, tuple)) else repr(v)
    return ", ".join(f"{k}={one(v)}" for k, v in args.items())


DTYPES = ("float32", "int64", "bool", "complex128", "object", "str")
SHAPE_OPS = ("empty", "unbatched", "mismatch", "extra")


def spoil(pick: Pick, case_: Case, args: dict, family: str) -> tuple[dict, str]:
    """Spoil one array argument of ``args`` in the way ``family`` names; returns the new arguments and a label."""
    name = pick.choice(sorted(k for k in case_.arrays if k in args))
    spec, a = case_.arrays[name], np.asarray(args[name])
    args = dict(args)
    if family == "dtype":
        dtype = pick.choice(DTYPES)
        args[name] = a.astype(dtype)
        return args, f"{name} as {dtype}"
    if family == "nonfinite":
        assume(a.size > 0)
        k, value = pick.int(0, a.size - 1), pick.choice([np.nan, np.inf, -np.inf])
        bad = a.astype(np.float64)  # a copy
        bad.flat[k] = value
        args[name] = bad
        return args, f"{name} with {value} at flat index {k}"
    op, shape, batch = pick.choice(SHAPE_OPS), list(a.shape), a.ndim - min(spec.core, a.ndim)
    assume(a.ndim > 0 or op == "extra")
    if op == "empty":
        shape[pick.int(0, a.ndim - 1)] = 0
    elif op == "unbatched":
        shape = shape[batch:] if batch else shape[1:]
    elif op == "mismatch":
        axis = pick.int(0, (batch or a.ndim) - 1)
        shape[axis] = pick.choice([k for k in range(1, 5) if k != shape[axis]])
    else:
        shape = [pick.int(2, 3)] + shape
    args[name] = _fill(spec, tuple(shape), pick.rng())
    return args, f"{name} of shape {tuple(shape)} ({op}) instead of {a.shape}"


def _ctx1(**change):
    """One task, n = d = 1: w = 1, X = 1, y = 1 (the smallest valid context), with some arguments replaced."""
    return {"w": np.ones(1), "X": np.ones((1, 1)), "y": np.ones(1)} | change


def _traj1(w0):
    """``gd``/``ngd`` arguments on the smallest valid context with the start ``w0``."""
    return {"w0": w0, "X": np.ones((1, 1)), "y": np.ones(1), "eta": 0.5, "steps": 0}


def _z32(**more):
    """Float32 tokens with float64 weights: NumPy's promotion makes the layer float64."""
    W, V = nf.ngd_weights(1, 0.5)
    return {"Z": np.ones((2, 2), np.float32), "W": W, "V": V, "n_context": 1} | more


_DIVERGING = {"Z": np.full((2, 2), 2.0), "W": np.ones((2, 2), bool), "V": nf.ngd_weights(1, 0.5)[1], "n_context": 1,
              "depth": 2, "activation": "exp"}  # w runs 2, 8.9e6, NaN: the loop leaves the float range

#: Exact inputs that once broke the property, checked before every sweep of their (function, family) so each
#: stays covered whatever hypothesis draws: (function, family) -> list of () -> arguments.
PINNED: dict[tuple[str, str], list] = {
    ("gd", "dtype"): [lambda: _traj1(np.zeros(1, complex))],  # the message must name w0, the parameter
    ("gd", "nonfinite"): [lambda: _traj1(np.array([np.nan]))],
    ("gd", "shape"): [lambda: _traj1(np.float64(0.3))],
    ("max_margin", "dtype"): [lambda: {"X": np.zeros((1, 1), int), "y": np.ones(1)}],  # not separable: X or y named
    ("max_margin", "shape"): [lambda: {"X": np.ones((1, 0)), "y": np.ones(1)}],  # d = 0
    ("kkt_residuals", "dtype"): [lambda: _ctx1(a=np.ones(1, np.float32))],  # every entry float64 beside float64 w
    ("sigmoid", "dtype"): [lambda: {"z": np.array(["0.5"])}, lambda: {"z": np.array([True, False])},
                           lambda: {"z": np.array([0.5 + 1j])}, lambda: {"z": np.array([1.0], object)}],
    ("sigmoid", "nonfinite"): [lambda: {"z": np.array([np.nan])}, lambda: {"z": np.array([1.0, -np.inf])}],
    ("elementwise_attention_naive", "shape"): [
        lambda: {"Z": np.zeros((0, 2, 2)), "W": nf.ngd_weights(1, 0.5)[0], "V": nf.ngd_weights(1, 0.5)[1],
                 "n_context": 1, "activation": "linear"},
        lambda: {"Z": np.zeros((2, 0, 2, 2)), "W": nf.ngd_weights(1, 0.5)[0], "V": nf.ngd_weights(1, 0.5)[1],
                 "n_context": 1, "activation": "sigmoid"}],
    ("elementwise_attention_naive", "dtype"): [lambda: _z32(activation="linear")],
    ("elementwise_attention_forward", "dtype"): [lambda: _z32(activation="linear")],
    ("relative_difference", "dtype"): [lambda: {"u": np.array([5.0]), "v": np.array([0])},
                                       lambda: {"u": np.array([[5.0], [0.0]]), "v": np.array([[0], [0]])}],
    ("rel_error", "nonfinite"): [lambda: {"a": np.float64(np.nan), "b": np.float64(0.1)},
                                 lambda: {"a": np.ones(2), "b": np.array([1.0, -np.inf])}],
    ("gradient_errors", "nonfinite"): [lambda: {"num": np.float64(0.1), "ana": np.float64(np.nan)},
                                       lambda: {"num": np.array([0.1, np.inf]), "ana": np.array([0.1, 0.1])}],
    ("check_directions", "nonfinite"): [lambda: {"x": np.float64(0.1), "grad": np.float64(np.nan)},
                                        lambda: {"x": np.ones(2), "grad": np.array([1.0, np.inf])}],
    ("elementwise_trajectory", "dtype"): [lambda: dict(_DIVERGING)],
}
for _name, _more in (("attention_forward", {}), ("attention_naive", {}), ("fast.attention_forward", {}),
                     ("stack_forward", {"layers": 1}), ("looped_forward", {"depth": 1}),
                     ("looped_forward_with_cache", {"depth": 1}), ("looped_trajectory", {"depth": 1}),
                     ("fast.looped_forward", {"depth": 1}), ("fast.query_loop", {"depth": 1}),
                     ("fast.looped_forward_with_cache", {"depth": 1}), ("fast.looped_trajectory", {"depth": 1})):
    PINNED[(_name, "dtype")] = [(lambda more: lambda: _z32(**more))(_more)]  # float64 out, by NumPy's promotion
for _name, _like in (("ngd", "gd"), ("max_margin_dual", "max_margin")):
    for _family in ("dtype", "nonfinite", "shape"):
        if (_like, _family) in PINNED:
            PINNED[(_name, _family)] = PINNED[(_like, _family)]


def _params(families):
    return [pytest.param(name, family, id=f"{name}-{family}") for name in CASES for family in families]


def _check_spoiled(case_: Case, args: dict, what: str) -> None:
    """The property on one spoiled call: refused naming a parameter, or finite outputs of the right shape."""
    try:
        result = _call(case_, args)
    except (ValueError, TypeError) as exc:
        assert names_a_parameter(case_, str(exc)), f"{what}: the message names no parameter: {exc}"[:800]
        return
    except AssertionError:
        numeric = all(np.asarray(args[k]).dtype.kind in "biuf" for k in case_.arrays if k in args)
        if case_.assertion_is_a_result and numeric:  # a failed check (NaN included) is the checker's answer
            return
        raise
    _check_result(case_, args, result, what)


@pytest.mark.parametrize("name, family", _params(["valid"]))
@given(raw=st.binary(min_size=POOL, max_size=POOL))
def test_valid_arguments_give_finite_results_of_the_documented_shape(name, family, raw):
    case_ = CASES[name]
    args = _draw_valid(Pick(raw), case_)
    what = f"valid arguments ({describe(args)})"
    try:
        result = _call(case_, args)
    except Exception as exc:  # noqa: BLE001 - any exception on valid input is the failure reported
        pytest.fail(f"{what} refused: {type(exc).__name__}: {exc}"[:800])
    _check_result(case_, args, result, what)


@given(raw=st.binary(min_size=POOL, max_size=POOL))
def _sweep_spoiled(name: str, family: str, raw: bytes) -> None:
    case_ = CASES[name]
    pick = Pick(raw)
    args, what = spoil(pick, case_, _draw_valid(pick, case_), family)
    _check_spoiled(case_, args, f"{name}: {what} ({describe(args)})")


@pytest.mark.parametrize("name, family", _params(["dtype", "nonfinite", "shape"]))
def test_spoiled_arguments_are_refused_by_name_or_give_finite_results(name, family):
    for make in PINNED.get((name, family), []):  # the exact inputs first: deterministic, whatever is drawn
        args = make()
        _check_spoiled(CASES[name], args, f"{name}: pinned input ({describe(args)})")
    _sweep_spoiled(name, family)


def test_every_public_function_that_takes_arrays_has_a_case():
    public = {n for n in nf.__all__ if inspect.isfunction(getattr(nf, n))}
    public |= {f"fast.{n}" for n, f in vars(fast).items()
               if inspect.isfunction(f) and f.__module__ == fast.__name__ and not n.startswith("_")}
    missing = public - set(CASES) - NO_ARRAYS
    assert not missing, f"public functions without a boundary case: {sorted(missing)}"
    assert not set(CASES) - public, sorted(set(CASES) - public)


def test_the_message_check_tells_a_name_from_an_article():
    c = CASES["rel_error"]  # parameters a and b
    assert not names_a_parameter(c, "w has a zero row: the zero vector has no direction")
    assert names_a_parameter(c, "a must be real numeric, got dtype complex128")
    assert names_a_parameter(c, "a has shape (2,) and b has shape (3,)")
    assert not names_a_parameter(CASES["margins"], "operands could not be broadcast together with shapes (2,3) (4,3)")
    assert names_a_parameter(CASES["margins"], "labels y must be in {-1, +1}, found 0.0")
    assert not names_a_parameter(CASES["margins"], "setting y_i x_i failed")


def _plain(text: str) -> str:
    """Docstring text without reST backticks and line breaks, for comparing sentences."""
    return " ".join(text.replace("`", "").split())


@pytest.mark.parametrize("name", sorted(NONFINITE))
def test_each_allowed_non_finite_result_is_stated_in_the_functions_docstring(name):
    assert _plain(NONFINITE[name].reason) in _plain(inspect.getdoc(CASES[name].func)), (
        f"{name}'s docstring does not say: {NONFINITE[name].reason}")


def test_the_allowed_non_finite_results_are_only_those_documented():
    """Each allowance lets through its documented non-finite value and nothing else."""
    def fails(name, args, result):
        with pytest.raises(AssertionError):
            _check_result(CASES[name], args, result, name)

    one, nan = np.ones(2), np.array([1.0, np.nan])
    _check_result(CASES["rel_error"], {"a": nan, "b": one}, float("inf"), "rel_error")
    fails("rel_error", {"a": one, "b": 2 * one}, float("inf"))  # inf without a non-finite input
    fails("rel_error", {"a": nan, "b": one}, float("nan"))  # NaN would let 'err > tol' pass
    fails("rel_error", {"a": nan, "b": one}, 0.5)  # a finite error would let 'err <= tol' pass
    _check_result(CASES["gradient_errors"], {"num": nan, "ana": one}, np.array([0.0, np.inf]), "gradient_errors")
    fails("gradient_errors", {"num": nan, "ana": one}, np.array([np.inf, np.inf]))  # inf at the finite entry
    fails("gradient_errors", {"num": nan, "ana": one}, np.array([0.0, 1.0]))
    _check_result(CASES["check_directions"], {"x": one, "grad": nan}, (np.zeros(2), np.full(2, np.nan)), "cd")
    fails("check_directions", {"x": one, "grad": nan}, (np.array([0.0, np.nan]), np.full(2, np.nan)))  # num
    fails("check_directions", {"x": one, "grad": nan}, (np.zeros(2), np.array([np.nan, 1.0])))
    fails("check_directions", {"x": one, "grad": one}, (np.zeros(2), np.array([np.nan, 1.0])))
    u, v = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 0.0], [2.0, 0.0]])
    _check_result(CASES["relative_difference"], {"u": u, "v": v}, np.array([np.inf, 0.5]), "rd")
    fails("relative_difference", {"u": u, "v": v}, np.array([np.inf, np.inf]))  # a non-zero reference
    fails("relative_difference", {"u": 0 * u, "v": v}, np.array([np.inf, 1.0]))  # zero against zero is 0
    args = dict(_DIVERGING)
    _check_result(CASES["elementwise_trajectory"], args, np.array([[2.0], [9e6], [np.nan]]), "et")
    fails("elementwise_trajectory", args, np.array([[np.nan], [9e6], [np.nan]]))  # w[0] is the input
    fails("elementwise_trajectory", args, np.array([[2.0], [np.inf], [1.0]]))  # back from inf
    fails("cosine", {"u": one, "v": one}, np.float64(np.nan))  # no allowance: finite or refused
