"""Training checked from outside the package: bad input refused, schedules replayed by hand, a second gradient route.

- every public function of the optimizers and trainers refuses input that would otherwise
  give a plausible answer (a parameter dropped, a NaN target, a flag given as a string);
- each trainer is replayed for a few iterations by a loop written here, with the learning
  rates computed here, and must agree to round-off;
- the logistic end loss and its gradient are recomputed by a scalar loop and by central
  differences written here (not :mod:`ngdformer.gradcheck`);
- valid extremes (float32 inputs, margins of +-1e4) stay finite and warning-free.
"""

import math
import warnings

import numpy as np
import pytest

from ngdformer import ngd_weights
from ngdformer.checks import MAX_DEPTH
from ngdformer.looped_training import end_loss, looped_batch, looped_loss, train_looped
from ngdformer.optim import (AdamState, SGDState, adam_init, adam_update, cosine_lr, make_optimizer, sgd_init,
                             sgd_update)
from ngdformer.training import (block, block_scales, distance_to_construction, from_blocks, init_weights,
                                off_identity, one_step_batch, one_step_loss, to_blocks, train_one_step_layer)


def _quiet(call):
    """Run ``call`` with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def _rng():
    return np.random.default_rng(0)


P2 = (np.ones(2), np.ones((2, 2)))  # two parameters
G2 = (np.ones(2), np.ones((2, 2)))


# --- the optimizers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    # state for fewer parameters than given: zip would drop the second parameter from the update
    (lambda: sgd_update(P2, G2, sgd_init(P2[:1]), lr=0.1), ValueError, r"state.velocity holds arrays of shapes"),
    (lambda: adam_update(P2, G2, adam_init(P2[:1]), lr=0.1), ValueError, r"state.m holds arrays of shapes"),
    (lambda: sgd_update(P2, G2, sgd_init((np.ones(3), np.ones((2, 2)))), lr=0.1), ValueError, "other parameters"),
    (lambda: sgd_update(P2, G2, adam_init(P2), lr=0.1), TypeError, "state must be an SGDState"),
    (lambda: adam_update(P2, G2, sgd_init(P2), lr=0.1), TypeError, "state must be an AdamState"),
    (lambda: adam_update(P2, G2, (0, P2, P2), lr=0.1), TypeError, "state must be an AdamState"),
    (lambda: sgd_update(P2, G2, SGDState((np.ones(2), np.full((2, 2), np.nan))), lr=0.1), ValueError,
     r"state.velocity\[1\] contains a non-finite value \(nan\)"),
    (lambda: adam_update(P2, G2, AdamState(3, P2, (np.ones(2), -np.ones((2, 2)))), lr=0.1), ValueError,
     "negative second moment"),
    (lambda: adam_update(P2, G2, AdamState(-1, P2, P2), lr=0.1), ValueError, "state.step must be finite and >= 0"),
    (lambda: adam_update(P2, G2, AdamState(1.5, P2, P2), lr=0.1), TypeError, "state.step must be an integer"),
    (lambda: adam_update(P2, G2, AdamState(0, (np.inf * P2[0], P2[1]), P2), lr=0.1), ValueError,
     r"state.m\[0\] contains a non-finite value \(inf\)"),
    # parameters and gradients
    (lambda: sgd_update(np.ones(2), np.ones(2), sgd_init((np.ones(2),)), lr=0.1), TypeError, "params must be a tuple"),
    (lambda: sgd_init(np.ones((2, 2))), TypeError, "params must be a tuple"),  # would be two rows
    (lambda: adam_init(()), ValueError, "params is empty"),
    (lambda: sgd_update(P2, G2[:1], sgd_init(P2), lr=0.1), ValueError, "do not match params shapes"),
    (lambda: adam_update((np.array([np.nan, 0.0]),), (np.ones(2),), adam_init((np.ones(2),)), lr=0.1), ValueError,
     r"params\[0\] contains a non-finite value \(nan\)"),
    # hyper-parameters: NaN, bools for numbers, strings, ranges
    (lambda: sgd_update(P2, G2, sgd_init(P2), lr=np.nan), ValueError, "lr must be finite and > 0, got nan"),
    (lambda: adam_update(P2, G2, adam_init(P2), lr=True), TypeError, "lr must be a real number, got True"),
    (lambda: adam_update(P2, G2, adam_init(P2), lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: sgd_update(P2, G2, sgd_init(P2), lr=0.1, momentum=np.nan), ValueError, "momentum must be finite"),
    (lambda: sgd_update(P2, G2, sgd_init(P2), lr=0.1, momentum=-0.1), ValueError, "momentum must be finite and >= 0"),
    (lambda: adam_update(P2, G2, adam_init(P2), lr=0.1, beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    (lambda: adam_update(P2, G2, adam_init(P2), lr=0.1, beta2=np.inf), ValueError, "beta2 must be finite"),
    (lambda: adam_update(P2, G2, adam_init(P2), lr=0.1, eps=0.0), ValueError, "eps must be finite and > 0"),
    # make_optimizer checks when it is built, not at the first update
    (lambda: make_optimizer("adam", lr=0.1, momentum=0.9), TypeError, r"got also \['momentum'\]"),
    (lambda: make_optimizer("sgd", momentum=0.9), TypeError, "needs lr"),
    (lambda: make_optimizer("adam", lr=np.nan), ValueError, "lr must be finite and > 0, got nan"),
    (lambda: make_optimizer("sgd", lr=0.1, momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda: make_optimizer(None, lr=0.1), TypeError, "optimizer must be one of"),
    (lambda: make_optimizer("rmsprop", lr=0.1), ValueError, r"optimizer must be one of \('adam', 'sgd'\)"),
    # the schedule
    (lambda: cosine_lr(0.1, 11, 10), ValueError, "step = 11 is past the end of the schedule"),
    (lambda: cosine_lr(0.1, -1, 10), ValueError, "step must be finite and >= 0, got -1"),
    (lambda: cosine_lr(0.1, 1.5, 10), TypeError, "step must be an integer, got 1.5"),
    (lambda: cosine_lr(np.nan, 1, 10), ValueError, "lr must be finite and > 0, got nan"),
    (lambda: cosine_lr(0.1, 1, MAX_DEPTH + 1), ValueError, "steps = 1000001 is too large"),
    (lambda: cosine_lr(0.1, 1, True), TypeError, "steps must be an integer, got True"),
])
def test_optimizers_refuse_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_an_update_moves_every_parameter():
    for init, update in ((sgd_init, sgd_update), (adam_init, adam_update)):
        new, state = update(P2, G2, init(P2), lr=0.1)
        assert len(new) == 2 and all(np.all(p < 1.0) for p in new)


def test_cosine_lr_pinned():
    T, lr = 10, 0.3
    assert cosine_lr(lr, 0, T) == lr  # the first iteration takes the full step
    assert cosine_lr(lr, T // 2, T) == pytest.approx(lr / 2, rel=1e-15)
    assert cosine_lr(lr, T - 1, T) == pytest.approx(lr * (1 - math.cos(math.pi / T)) / 2, rel=1e-13)  # 0.0073
    assert cosine_lr(lr, T, T) == pytest.approx(0.0, abs=1e-17)  # 0 is reached at t = T, past the last iteration
    assert cosine_lr(lr, 0, 0) == lr and cosine_lr(lr, 1, 0) == pytest.approx(0.0, abs=1e-17)  # T = 0 counts as 1


# --- the trainers: bad input -------------------------------------------------------------------------------


ONE_STEP = dict(n=5, d=2, eta=0.5, iterations=0, quiet=True)  # iterations=0: nothing runs to trip over it later


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rng=0), TypeError, "rng must be a numpy.random.Generator"),
    (dict(rng=np.random), TypeError, "rng must be a numpy.random.Generator"),
    (dict(lr=np.nan), ValueError, "lr must be finite and > 0, got nan"),
    (dict(lr=0.0), ValueError, "lr must be finite and > 0, got 0.0"),
    (dict(lr=True), TypeError, "lr must be a real number, got True"),
    (dict(iterations=MAX_DEPTH + 1), ValueError, "iterations = 1000001 is too large"),
    (dict(iterations=True), TypeError, "iterations must be an integer"),
    (dict(batch=True), TypeError, "batch must be an integer"),
    (dict(n=2.0), TypeError, "n must be an integer, got 2.0"),
    (dict(eta=np.inf), ValueError, "eta must be finite and > 0"),
    (dict(sigma0=np.nan), ValueError, "sigma0 must be finite and >= 0, got nan"),
    (dict(momentum=np.nan), ValueError, "momentum must be finite"),  # Adam ignores it, a NaN is still a typo
    (dict(optimizer="sgd", momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
    (dict(init_scale=-1.0), ValueError, "init_scale must be finite and > 0"),  # init="zeros" ignores it
    (dict(init=None), TypeError, "init must be one of"),
    (dict(init="ones"), ValueError, "init must be one of"),
    (dict(params=["full"]), TypeError, "params must be one of"),
    (dict(schedule="step"), ValueError, "schedule must be one of"),
    (dict(optimizer="lbfgs"), ValueError, "optimizer must be one of"),
    (dict(quiet="no"), TypeError, "quiet must be True or False, got 'no'"),
    (dict(batch=2**20, n=2**10), ValueError, "Z would have shape"),
])
def test_one_step_training_refuses_bad_input(kwargs, error, match):
    args = dict(rng=_rng()) | ONE_STEP | kwargs
    rng = args.pop("rng")
    with pytest.raises(error, match=match):
        train_one_step_layer(rng, **args)


LOOPED = dict(n=5, d=2, depth=2, iterations=0, quiet=True)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rng=None), TypeError, "rng must be a numpy.random.Generator"),
    (dict(lr=np.nan), ValueError, "lr must be finite and > 0, got nan"),
    (dict(depth=MAX_DEPTH + 1), ValueError, "depth = 1000001 is too large"),
    (dict(depth=0), ValueError, "depth must be finite and > 0, got 0"),
    (dict(iterations=MAX_DEPTH + 1), ValueError, "iterations = 1000001 is too large"),
    (dict(quiet="yes"), TypeError, "quiet must be True or False"),
    (dict(init_scale=np.nan), ValueError, "init_scale must be finite and > 0, got nan"),
    (dict(sigma0=-1.0), ValueError, "sigma0 must be finite and >= 0"),
    (dict(objective="logistic", n_query=0), ValueError, "n_query must be finite and > 0, got 0"),
    (dict(eta=-0.5), ValueError, "eta must be finite and > 0"),  # not used by "w_star", still refused
    (dict(objective="ngd"), ValueError, "objective 'ngd' needs eta"),
    (dict(objective=None), TypeError, "objective must be one of"),
    (dict(momentum=2.0), ValueError, r"momentum must be in \[0, 1\)"),
    (dict(schedule=None), TypeError, "schedule must be one of"),
    (dict(optimizer="adamw"), ValueError, "optimizer must be one of"),
    (dict(depth=10**5, batch=10**3, n=10), ValueError, "the caches of the loops would have shape"),
])
def test_looped_training_refuses_bad_input(kwargs, error, match):
    args = dict(rng=_rng()) | LOOPED | kwargs
    rng = args.pop("rng")
    with pytest.raises(error, match=match):
        train_looped(rng, **args)


def _one_step_inputs():
    Z, target = one_step_batch(_rng(), 3, 4, 2, 0.5)
    return 0.1 * np.ones((4, 4)), 0.2 * np.eye(4), Z, target


def _looped_inputs(objective="w_star"):
    Z, targets = looped_batch(_rng(), 3, 4, 2, objective, sigma0=0.5, eta=0.5, depth=2)
    return 0.1 * np.ones((4, 4)), 0.2 * np.eye(4), Z, targets


def _with(targets, **changes):
    return targets | changes


@pytest.mark.parametrize("call, error, match", [
    (lambda W, V, Z, t: one_step_loss(W, V, Z[0], t[0]), ValueError, r"Z has shape \(4, 5\), expected a batch"),
    (lambda W, V, Z, t: one_step_loss(W, V, Z, np.where(t == t.max(), np.nan, t)), ValueError,
     r"target contains a non-finite value \(nan\)"),
    (lambda W, V, Z, t: one_step_loss(W, V, Z, t[..., :3]), ValueError, r"target has shape \(3, 3\), expected"),
    (lambda W, V, Z, t: one_step_loss(W, np.full_like(V, np.inf), Z, t), ValueError, r"V contains a non-finite"),
    (lambda W, V, Z, t: one_step_batch(0, 3, 4, 2, 0.5), TypeError, "rng must be a numpy.random.Generator"),
    (lambda W, V, Z, t: one_step_batch(_rng(), 3, 4, 2, 0.5, sigma0=-1.0), ValueError, "sigma0 must be finite"),
    (lambda W, V, Z, t: one_step_batch(_rng(), 3, 4, 2, np.nan), ValueError, "eta must be finite"),
    (lambda W, V, Z, t: init_weights(np.random, 2), TypeError, "rng must be a numpy.random.Generator"),
    (lambda W, V, Z, t: init_weights(_rng(), 2, "zeros", init_scale=0.0), ValueError, "init_scale must be finite"),
    (lambda W, V, Z, t: init_weights(_rng(), 2, "Random"), ValueError, "init must be one of"),
    (lambda W, V, Z, t: block_scales(np.full((4, 4), np.nan), V), ValueError, r"W contains a non-finite value"),
    (lambda W, V, Z, t: block_scales(W, np.eye(6)), ValueError, r"V has shape \(6, 6\), expected \(4, 4\)"),
    (lambda W, V, Z, t: block_scales(np.eye(3), np.eye(3)), ValueError, r"W must have shape \(2d, 2d\)"),
    (lambda W, V, Z, t: distance_to_construction(W, V, 0.0), ValueError, "eta must be finite and > 0"),
    (lambda W, V, Z, t: off_identity(np.array([[1.0, np.nan], [0.0, 1.0]])), ValueError, r"M contains a non-finite"),
    (lambda W, V, Z, t: off_identity(np.ones((2, 3))), ValueError, r"M must be a square matrix"),
    (lambda W, V, Z, t: off_identity(np.ones((0, 0))), ValueError, r"M must be a square matrix"),
    (lambda W, V, Z, t: block(W, "13"), ValueError, "block name must be '11', '12', '21' or '22'"),
    (lambda W, V, Z, t: block(W, True), TypeError, "block name must be a string"),
    (lambda W, V, Z, t: block(W, "12", d=3), ValueError, r"d = 3 does not match M of shape \(4, 4\)"),
    (lambda W, V, Z, t: block(np.ones((3, 3)), "12"), ValueError, r"M must have shape \(..., 2d, 2d\)"),
    (lambda W, V, Z, t: from_blocks((np.eye(2), np.eye(2)), 2), ValueError, "blocks must be the three"),
    (lambda W, V, Z, t: from_blocks((np.eye(2), np.eye(3), np.eye(2)), 2), ValueError, r"V11 has shape \(3, 3\)"),
    (lambda W, V, Z, t: to_blocks(W, np.eye(2)), ValueError, r"V has shape \(2, 2\), expected \(4, 4\)"),
])
def test_one_step_helpers_refuse_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(*_one_step_inputs())


@pytest.mark.parametrize("objective, call, error, match", [
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z[0], 2, "w_star", **t), ValueError, r"Z has shape \(4, 5\)"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 0, "w_star", **t), ValueError, "depth must be finite and > 0"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, MAX_DEPTH + 1, "w_star", **t), ValueError, "too large"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2.0, "w_star", **t), TypeError, "depth must be an integer"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "w_star"), ValueError, r"missing \['w_star'\]"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "ngd", **t), ValueError, r"missing \['w_ngd'\]"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "w_star", w_ngd=t["w_star"], **t), ValueError,
     r"got also \['w_ngd'\]"),  # a target of another objective is not silently ignored
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "w_star", target=1.0, **t), ValueError, "unknown targets"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "w_star", w_star=np.nan * t["w_star"]), ValueError,
     r"w_star contains a non-finite value \(nan\)"),
    ("w_star", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "w_star", w_star=t["w_star"][:2]), ValueError,
     r"w_star has shape \(2, 2\), expected \(3, 2\)"),
    ("w_star", lambda W, V, Z, t: looped_loss(np.nan * W, V, Z, 2, "w_star", **t), ValueError, "W contains a non"),
    ("logistic", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "logistic", **_with(t, y_query=0 * t["y_query"])),
     ValueError, r"labels y_query must be in \{-1, \+1\}"),
    ("logistic", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "logistic", **_with(t, X_query=t["X_query"][:2])),
     ValueError, r"X_query has shape \(2, 4, 2\), expected \(3, n_q, 2\)"),
    ("logistic", lambda W, V, Z, t: looped_loss(W, V, Z, 2, "logistic", **_with(t, y_query=t["y_query"][:, :3])),
     ValueError, r"y_query has shape \(3, 3\), expected \(3, 4\)"),
    ("logistic", lambda W, V, Z, t: end_loss(np.ones(2), "logistic", **t), ValueError, r"w must have shape \(B, d\)"),
    ("logistic", lambda W, V, Z, t: end_loss(np.full((3, 2), np.inf), "logistic", **t), ValueError,
     r"w contains a non-finite value \(inf\)"),
    ("logistic", lambda W, V, Z, t: end_loss(np.ones((3, 2)), None, **t), TypeError, "objective must be one of"),
    ("logistic", lambda W, V, Z, t: end_loss(np.ones((3, 2)), "exp", **t), ValueError, "objective must be one of"),
    ("logistic", lambda W, V, Z, t: looped_batch(_rng(), 3, 4, 2, "logistic", n_query=0), ValueError, "n_query"),
    ("logistic", lambda W, V, Z, t: looped_batch(0, 3, 4, 2, "logistic"), TypeError, "rng must be a numpy.random"),
    ("logistic", lambda W, V, Z, t: looped_batch(_rng(), 3, 4, 2, "ngd", eta=0.5, depth=True), TypeError,
     "depth must be an integer"),
    ("logistic", lambda W, V, Z, t: looped_batch(_rng(), 3, 4, 2, "w_star", sigma0=np.nan), ValueError, "sigma0"),
])
def test_looped_helpers_refuse_bad_input(objective, call, error, match):
    with pytest.raises(error, match=match):
        call(*_looped_inputs(objective))


def test_looped_batch_checks_before_it_draws():
    rng = _rng()
    with pytest.raises(ValueError, match="objective 'ngd' needs eta and depth"):
        looped_batch(rng, 3, 4, 2, "ngd")
    assert rng.bit_generator.state == _rng().bit_generator.state  # nothing was drawn


def test_off_identity_in_the_history_of_a_diverged_run_is_nan():
    # SGD at lr 1e200 overflows the weights within a few iterations; the history must not report "exactly cI" (0.0)
    with np.errstate(all="ignore"):
        _, _, hist = train_looped(_rng(), n=4, d=2, depth=2, iterations=6, batch=4, lr=1e200, optimizer="sgd",
                                  init_scale=0.5, sigma0=1.0, quiet=True)
    diverged = ~np.isfinite(hist["loss"])
    assert diverged.any()
    assert np.all(np.isnan(hist["w12_off"][np.argmax(diverged):]))


def test_off_identity_at_extreme_scales():
    M = np.array([[1.0, 2.0], [3.0, 1.0]])
    for scale in (1e200, 1e-200):
        assert _quiet(lambda: off_identity(scale * M)) == pytest.approx(off_identity(M), rel=1e-14)
    assert off_identity(np.float32(3e38) * np.eye(3, dtype=np.float32)) == 0.0


# --- the trainers replayed by hand -------------------------------------------------------------------------


def _lr(schedule, lr, t, T):
    """The documented schedule, written out: lr (1 + cos(pi t / T)) / 2 at iteration t = 0, ..., T - 1."""
    return lr * (1.0 + math.cos(math.pi * t / T)) / 2.0 if schedule == "cosine" else lr


class _HandOptimizer:
    """Adam (Kingma & Ba, Algorithm 1) or SGD with heavy-ball momentum, one array at a time."""

    def __init__(self, name, params, momentum=0.0):
        self.name, self.momentum, self.t = name, momentum, 0
        self.m = [np.zeros_like(p) for p in params]
        self.s = [np.zeros_like(p) for p in params]

    def step(self, params, grads, lr):
        self.t += 1
        out = []
        for k, (p, g) in enumerate(zip(params, grads)):
            if self.name == "sgd":
                self.m[k] = self.momentum * self.m[k] + g
                out.append(p - lr * self.m[k])
                continue
            self.m[k] = 0.9 * self.m[k] + 0.1 * g
            self.s[k] = 0.999 * self.s[k] + 0.001 * g * g
            m_hat, s_hat = self.m[k] / (1 - 0.9 ** self.t), self.s[k] / (1 - 0.999 ** self.t)
            out.append(p - lr * m_hat / (np.sqrt(s_hat) + 1e-8))
        return out


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
@pytest.mark.parametrize("optimizer, momentum", [("adam", 0.0), ("sgd", 0.5)])
def test_one_step_training_replayed_by_hand(schedule, optimizer, momentum):
    n, d, eta, T, batch, lr = 6, 2, 0.5, 5, 8, 0.05
    W, V, hist = train_one_step_layer(np.random.default_rng(3), n=n, d=d, eta=eta, iterations=T, batch=batch, lr=lr,
                                      optimizer=optimizer, momentum=momentum, schedule=schedule, init="random",
                                      quiet=True)
    rng = np.random.default_rng(3)
    params = [0.1 * rng.standard_normal((2 * d, 2 * d)), 0.1 * rng.standard_normal((2 * d, 2 * d))]  # W, then V
    opt, losses = _HandOptimizer(optimizer, params, momentum), []
    for t in range(T):
        Z, target = one_step_batch(rng, batch, n, d, eta, sigma0=1 / math.sqrt(d))
        J, dW, dV = one_step_loss(*params, Z, target)
        losses.append(J)
        params = opt.step(params, (dW, dV), _lr(schedule, lr, t, T))
    np.testing.assert_allclose(hist["loss"], losses, rtol=1e-13)
    np.testing.assert_allclose(W, params[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(V, params[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
@pytest.mark.parametrize("optimizer, momentum, objective", [("adam", 0.0, "w_star"), ("sgd", 0.5, "logistic"),
                                                             ("adam", 0.0, "ngd")])
def test_looped_training_replayed_by_hand(schedule, optimizer, momentum, objective):
    n, d, depth, T, batch, lr, eta = 5, 2, 3, 4, 6, 0.03, 0.7
    W, V, hist = train_looped(np.random.default_rng(5), n=n, d=d, depth=depth, iterations=T, objective=objective,
                              batch=batch, lr=lr, optimizer=optimizer, momentum=momentum, init_scale=0.1, sigma0=0.3,
                              n_query=3, schedule=schedule, eta=eta, quiet=True)
    rng = np.random.default_rng(5)
    params = [0.1 * rng.standard_normal((2 * d, 2 * d)), 0.1 * rng.standard_normal((2 * d, 2 * d))]
    opt, losses = _HandOptimizer(optimizer, params, momentum), []
    for t in range(T):
        extra = dict(eta=eta, depth=depth) if objective == "ngd" else {}
        Z, targets = looped_batch(rng, batch, n, d, objective, sigma0=0.3, n_query=3, **extra)
        J, dW, dV = looped_loss(*params, Z, depth, objective, **targets)
        losses.append(J)
        params = opt.step(params, (dW, dV), _lr(schedule, lr, t, T))
    np.testing.assert_allclose(hist["loss"], losses, rtol=1e-13)
    np.testing.assert_allclose(W, params[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(V, params[1], rtol=1e-12, atol=1e-15)


# --- the logistic end loss, a second route ------------------------------------------------------------------


def _logistic_by_hand(w, Xq, yq):
    """J = mean over tasks and points of log(1 + exp(-m)), m = y <w, x>.

    dJ/dw_b = -sum_j y_j x_j / (1 + e^m) / (B n_q): written one scalar at a time.
    """
    B, nq, d = Xq.shape
    J, dw = 0.0, np.zeros((B, d))
    for b in range(B):
        for j in range(nq):
            m = yq[b, j] * sum(w[b, k] * Xq[b, j, k] for k in range(d))
            J += math.log1p(math.exp(-m)) if m > -30 else -m + math.log1p(math.exp(m))
            for k in range(d):
                dw[b, k] -= yq[b, j] * Xq[b, j, k] / (1.0 + math.exp(m)) / (B * nq)
    return J / (B * nq), dw


def test_logistic_end_loss_against_a_scalar_loop_and_own_differences():
    rng = np.random.default_rng(11)
    B, nq, d = 3, 4, 2
    w = 2.0 * rng.standard_normal((B, d))
    Xq = rng.standard_normal((B, nq, d))
    yq = np.where(rng.standard_normal((B, nq)) >= 0, 1.0, -1.0)
    J, dw = end_loss(w, "logistic", X_query=Xq, y_query=yq)
    J_hand, dw_hand = _logistic_by_hand(w, Xq, yq)
    assert J == pytest.approx(J_hand, rel=1e-13)
    np.testing.assert_allclose(dw, dw_hand, rtol=1e-12, atol=1e-16)
    h = 1e-6  # central differences on every entry of w, written here
    for b in range(B):
        for k in range(d):
            e = np.zeros((B, d))
            e[b, k] = h
            num = (end_loss(w + e, "logistic", X_query=Xq, y_query=yq)[0]
                   - end_loss(w - e, "logistic", X_query=Xq, y_query=yq)[0]) / (2 * h)
            assert abs(num - dw[b, k]) <= 1e-6 + 1e-5 * abs(dw[b, k]), (b, k, num, dw[b, k])


def test_logistic_looped_loss_against_own_differences():
    """Every entry of dW and dV of the logistic objective through two loops, by central differences written here."""
    rng = np.random.default_rng(12)
    Z, targets = looped_batch(rng, 2, 3, 1, "logistic", sigma0=0.5, n_query=3)
    W, V = 0.5 * rng.standard_normal((2, 2)), 0.5 * rng.standard_normal((2, 2))
    J, dW, dV = looped_loss(W, V, Z, 2, "logistic", **targets)
    h = 1e-6
    for which, M, grad in (("W", W, dW), ("V", V, dV)):
        for idx in np.ndindex(M.shape):
            e = np.zeros_like(M)
            e[idx] = h
            args = ((W + e, V), (W - e, V)) if which == "W" else ((W, V + e), (W, V - e))
            num = (looped_loss(*args[0], Z, 2, "logistic", **targets)[0]
                   - looped_loss(*args[1], Z, 2, "logistic", **targets)[0]) / (2 * h)
            assert abs(num - grad[idx]) <= 1e-6 + 1e-5 * abs(grad[idx]), (which, idx, num, grad[idx])


# --- valid extremes ------------------------------------------------------------------------------------------


def test_logistic_end_loss_at_margins_of_1e4_in_float32():
    w = np.float32([[1.0, 0.0], [1.0, 0.0]])
    Xq = np.float32([[[1e4, 0.0], [-1e4, 0.0]], [[1e4, 1.0], [5.0, 0.0]]])  # margins +1e4, -1e4, +1e4, +5
    yq = np.float32([[1.0, 1.0], [1.0, 1.0]])
    J, dw = _quiet(lambda: end_loss(w, "logistic", X_query=Xq, y_query=yq))
    assert J == pytest.approx((1e4 + math.log1p(math.exp(-5.0))) / 4, rel=1e-6)  # the -1e4 margin costs 1e4
    assert np.all(np.isfinite(dw)) and dw[0, 0] == pytest.approx(1e4 / 4, rel=1e-6)  # -(1/4) y x sigma(-m), m = -1e4


def test_one_step_training_with_margins_of_1e4_and_float32_inputs():
    Z, target = one_step_batch(_rng(), 4, 6, 2, 0.5, sigma0=1e4)  # |w0| ~ 1e4: margins of order +-1e4
    assert np.max(np.abs(Z[:, 2:, -1])) > 1e3 and np.all(np.isfinite(target))
    W, V = ngd_weights(2, 0.5)
    J, dW, dV = _quiet(lambda: one_step_loss(W, V, Z, target))
    assert J < 1e-20 * np.max(np.abs(target)) ** 2  # the construction is exact at any scale
    J32, dW32, dV32 = _quiet(lambda: one_step_loss(W.astype(np.float32), V.astype(np.float32), Z.astype(np.float32),
                                                   target.astype(np.float32)))
    assert np.isfinite(J32) and np.all(np.isfinite(dW32)) and np.all(np.isfinite(dV32))
    W1, V1, hist = _quiet(lambda: train_one_step_layer(_rng(), n=6, d=2, eta=0.5, iterations=5, batch=4, sigma0=1e4,
                                                       quiet=True))
    assert np.all(np.isfinite(hist["loss"])) and np.all(np.isfinite(W1)) and np.all(np.isfinite(V1))


def test_looped_loss_in_float32():
    W, V, Z, targets = _looped_inputs("logistic")
    f32 = {k: v.astype(np.float32) for k, v in targets.items()}
    J, dW, dV = _quiet(lambda: looped_loss(W.astype(np.float32), V.astype(np.float32), Z.astype(np.float32), 2,
                                           "logistic", **f32))
    J64, dW64, dV64 = looped_loss(W, V, Z, 2, "logistic", **targets)
    assert J == pytest.approx(J64, rel=1e-5)
    np.testing.assert_allclose(dW, dW64, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(dV, dV64, rtol=1e-3, atol=1e-5)
