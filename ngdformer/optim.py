r"""Optimizers by hand: SGD with momentum and Adam as pure functions with explicit state (chapter 06).

Parameters and gradients are tuples of arrays (for example ``(W, V)``). An update
returns new arrays and a new state; nothing is modified in place, so a training
loop reads ``params, state = adam_update(params, grads, state, lr=1e-2)``.

.. math::
    \text{SGD:}\quad v_t = \mu v_{t-1} + g_t,\qquad \theta_t = \theta_{t-1} - \mathrm{lr}\, v_t

    \text{Adam:}\quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t^2,\quad
    \theta_t = \theta_{t-1} - \mathrm{lr}\,\frac{m_t / (1-\beta_1^t)}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .checks import MAX_DEPTH, InputTypeError, _short, as_float, check_positive


class SGDState(NamedTuple):
    """State of :func:`sgd_update`: one velocity array per parameter."""

    velocity: tuple  #: one ndarray per parameter, the shape of that parameter: the running sum v


class AdamState(NamedTuple):
    """State of :func:`adam_update`: step count and the two moment estimates, one array per parameter."""

    step: int  #: number of updates taken so far, t (0 after :func:`adam_init`)
    m: tuple  #: one ndarray per parameter, the shape of that parameter: first moments m_t
    s: tuple  #: one ndarray per parameter, the shape of that parameter: uncentred second moments s_t


class Optimizer(NamedTuple):
    """An optimizer as a pair of pure functions: ``init(params) -> state``, ``update(params, grads, state)``."""

    init: Callable  #: ``init(params) -> state``
    update: Callable  #: ``update(params, grads, state, **override) -> (params, state)``


def _check_choice(name: str, value, options) -> str:
    """Check a named option is one of the strings ``options`` (a non-string is a TypeError)."""
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be one of {tuple(options)}, got {_short(value)}")
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def _arrays(name: str, arrays) -> tuple:
    """A tuple (or list) of finite float arrays, named ``name[k]`` in messages."""
    if not isinstance(arrays, (tuple, list)):
        raise InputTypeError(f"{name} must be a tuple of arrays, one per parameter (for example (W, V)), "
                             f"got {type(arrays).__name__}")
    return tuple(as_float(f"{name}[{k}]", a) for k, a in enumerate(arrays))


def _check_params(params, grads=None) -> tuple:
    params = _arrays("params", params)
    if not params:
        raise ValueError("params is empty: give at least one parameter array")
    if grads is None:
        return params
    grads = _arrays("grads", grads)
    if len(grads) != len(params) or any(g.shape != p.shape for p, g in zip(params, grads)):
        raise ValueError(f"grads shapes {[g.shape for g in grads]} do not match params shapes "
                         f"{[p.shape for p in params]}")
    return params, grads


def _check_slots(name: str, slots, params) -> tuple:
    """Optimizer state arrays: one per parameter, each the shape of its parameter, finite."""
    slots = _arrays(name, slots)
    if len(slots) != len(params) or any(a.shape != p.shape for a, p in zip(slots, params)):
        raise ValueError(f"{name} holds arrays of shapes {[a.shape for a in slots]} but params have shapes "
                         f"{[p.shape for p in params]}: the state belongs to other parameters")
    return slots


def _check_fraction(name: str, value) -> None:
    check_positive(name, value, allow_zero=True)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def sgd_init(params) -> SGDState:
    """Initial SGD state: zero velocities, one per parameter array.

    Parameters
    ----------
    params : tuple of ndarray, the parameters, for example ``(W, V)`` each of shape (D, D).

    Returns
    -------
    state : SGDState, ``velocity`` a tuple of zero arrays shaped like ``params``.
    """
    return SGDState(tuple(np.zeros_like(p) for p in _check_params(params)))


def sgd_update(params, grads, state: SGDState, *, lr: float, momentum: float = 0.0) -> tuple[tuple, SGDState]:
    r"""One SGD step with heavy-ball momentum, :math:`v \leftarrow \mu v + g,\ \theta \leftarrow \theta - \mathrm{lr}\, v`.

    With ``momentum = 0`` this is plain gradient descent :math:`\theta \leftarrow \theta - \mathrm{lr}\, g`.

    Parameters
    ----------
    params : tuple of ndarray, the parameters :math:`\theta` (not modified).
    grads : tuple of ndarray, the gradients :math:`g`, one per parameter, same shapes as ``params``.
    state : SGDState, from :func:`sgd_init` or a previous update.
    lr : float > 0, the learning rate.
    momentum : float in [0, 1), the momentum :math:`\mu` (default 0).

    Returns
    -------
    params : tuple of ndarray, the new parameters, same shapes.
    state : SGDState, the new velocities.
    """
    check_positive("lr", lr)
    _check_fraction("momentum", momentum)
    params, grads = _check_params(params, grads)
    if not isinstance(state, SGDState):
        raise InputTypeError(f"state must be an SGDState from sgd_init, got {type(state).__name__}")
    state = SGDState(_check_slots("state.velocity", state.velocity, params))
    return _sgd_step(params, grads, state, lr=lr, momentum=momentum)


def _sgd_step(params, grads, state: SGDState, *, lr: float, momentum: float = 0.0) -> tuple[tuple, SGDState]:
    """Kernel of :func:`sgd_update` on checked input."""
    velocity = tuple(momentum * v + g for v, g in zip(state.velocity, grads))
    return tuple(p - lr * v for p, v in zip(params, velocity)), SGDState(velocity)


def adam_init(params) -> AdamState:
    """Initial Adam state: step 0 and zero moments, one pair per parameter array.

    Parameters
    ----------
    params : tuple of ndarray, the parameters, for example ``(W, V)`` each of shape (D, D).

    Returns
    -------
    state : AdamState, ``step = 0`` and ``m``, ``s`` tuples of zero arrays shaped like ``params``.
    """
    params = _check_params(params)
    return AdamState(0, tuple(np.zeros_like(p) for p in params), tuple(np.zeros_like(p) for p in params))


def adam_update(params, grads, state: AdamState, *, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = 1e-8) -> tuple[tuple, AdamState]:
    r"""One Adam step (Kingma & Ba 2015, Algorithm 1) with bias-corrected moments.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \mathrm{lr}\,\hat m_t / (\sqrt{\hat s_t} + \epsilon),\quad
        \hat m_t = \frac{m_t}{1-\beta_1^t},\ \hat s_t = \frac{s_t}{1-\beta_2^t}

    An entry whose gradient has always been exactly zero never moves (0 / (0 + eps) = 0).

    Parameters
    ----------
    params : tuple of ndarray, the parameters :math:`\theta` (not modified).
    grads : tuple of ndarray, the gradients :math:`g_t`, one per parameter, same shapes as ``params``.
    state : AdamState, from :func:`adam_init` or a previous update.
    lr : float > 0, the learning rate.
    beta1 : float in [0, 1), decay :math:`\beta_1` of the first moment (default 0.9).
    beta2 : float in [0, 1), decay :math:`\beta_2` of the second moment (default 0.999).
    eps : float > 0, :math:`\epsilon` in the denominator (default 1e-8).

    Returns
    -------
    params : tuple of ndarray, the new parameters, same shapes.
    state : AdamState, step t and the new moments.
    """
    check_positive("lr", lr)
    check_positive("eps", eps)
    _check_fraction("beta1", beta1)
    _check_fraction("beta2", beta2)
    params, grads = _check_params(params, grads)
    if not isinstance(state, AdamState):
        raise InputTypeError(f"state must be an AdamState from adam_init, got {type(state).__name__}")
    step = check_positive("state.step", state.step, integer=True, allow_zero=True, maximum=MAX_DEPTH)
    m, s = _check_slots("state.m", state.m, params), _check_slots("state.s", state.s, params)
    if any(sk.min(initial=0.0) < 0 for sk in s):
        raise ValueError("state.s holds a negative second moment; s_t is a running mean of squares, >= 0")
    return _adam_step(params, grads, AdamState(int(step), m, s), lr=lr, beta1=beta1, beta2=beta2, eps=eps)


def _adam_step(params, grads, state: AdamState, *, lr: float, beta1: float = 0.9, beta2: float = 0.999,
               eps: float = 1e-8) -> tuple[tuple, AdamState]:
    """Kernel of :func:`adam_update` on checked input."""
    t = state.step + 1
    m = tuple(beta1 * m + (1 - beta1) * g for m, g in zip(state.m, grads))
    s = tuple(beta2 * s + (1 - beta2) * g * g for s, g in zip(state.s, grads))
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t  # bias corrections
    new = tuple(p - lr * (mk / c1) / (np.sqrt(sk / c2) + eps) for p, mk, sk in zip(params, m, s))
    return new, AdamState(t, m, s)


def cosine_lr(lr: float, step: int, steps: int) -> float:
    r"""Cosine learning-rate schedule, from ``lr`` at t = 0 down to 0 at t = T.

    .. math:: \mathrm{lr}_t = \mathrm{lr}\,\tfrac12(1 + \cos(\pi t / T))

    Parameters
    ----------
    lr : float > 0, the initial learning rate.
    step : int, the current step t, 0 <= t <= max(T, 1).
    steps : int >= 0, the total number of steps T (0 counts as 1), at most ``MAX_DEPTH``.

    Returns
    -------
    lr_t : float, the learning rate of step t: ``lr`` at t = 0, ``lr / 2`` at t = T/2 and 0 at t = T.
        A loop of T iterations t = 0, ..., T - 1 (the trainers of chapters 06 and 08) never reaches 0:
        its last step is :math:`\mathrm{lr}\,(1 - \cos(\pi / T)) / 2 \approx \mathrm{lr}\,\pi^2 / (4T^2)`.
    """
    check_positive("lr", lr)
    check_positive("steps", steps, integer=True, allow_zero=True, maximum=MAX_DEPTH)
    check_positive("step", step, integer=True, allow_zero=True)
    if step > max(steps, 1):
        raise ValueError(f"step = {step} is past the end of the schedule (steps = {steps}); need 0 <= step <= steps")
    return _cosine_lr(lr, step, steps)


def _cosine_lr(lr: float, step: int, steps: int) -> float:
    """Kernel of :func:`cosine_lr` on checked input."""
    return 0.5 * lr * (1.0 + np.cos(np.pi * step / max(steps, 1)))


_HYPER = {"adam": ("lr", "beta1", "beta2", "eps"), "sgd": ("lr", "momentum")}


def _check_hyper(name, hyper: dict) -> None:
    """Check an optimizer name and its keyword hyper-parameters (``lr`` required) at once."""
    _check_choice("optimizer", name, tuple(_HYPER))
    unknown = sorted(set(hyper) - set(_HYPER[name]))
    if unknown:
        raise InputTypeError(f"optimizer {name!r} takes the hyper-parameters {_HYPER[name]}, got also {unknown}")
    if "lr" not in hyper:
        raise InputTypeError(f"optimizer {name!r} needs lr, the step size, e.g. make_optimizer({name!r}, lr=1e-2)")
    for key, value in hyper.items():
        if key in ("momentum", "beta1", "beta2"):
            _check_fraction(key, value)
        else:
            check_positive(key, value)


def make_optimizer(name: str, **hyper) -> Optimizer:
    """Build an optimizer by name with its hyper-parameters bound (chapter 06).

    For example ``make_optimizer("adam", lr=1e-2)`` or ``make_optimizer("sgd", lr=0.1, momentum=0.9)``.

    Parameters
    ----------
    name : {"adam", "sgd"}, which optimizer.
    **hyper : keyword hyper-parameters of :func:`adam_update` or :func:`sgd_update`: ``lr`` (required)
        and the optional ones, checked here (a name the optimizer does not take is a ``TypeError``,
        a value out of range a ``ValueError``).

    Returns
    -------
    optimizer : Optimizer
        ``init`` is :func:`adam_init` or :func:`sgd_init`; ``update(params, grads, state, **override)``
        calls the update with ``hyper``, keyword overrides (for example a scheduled ``lr=``) winning
        for that call.
    """
    _check_hyper(name, hyper)
    init, update = {"adam": (adam_init, adam_update), "sgd": (sgd_init, sgd_update)}[name]
    return Optimizer(init, lambda p, g, st, **kw: update(p, g, st, **(hyper | kw)))


def _kernel_optimizer(name: str, **hyper) -> Optimizer:
    """:func:`make_optimizer` for the trainers: hyper-parameters checked once, each update on the unchecked kernel."""
    _check_hyper(name, hyper)
    step = {"adam": _adam_step, "sgd": _sgd_step}[name]
    init = {"adam": adam_init, "sgd": sgd_init}[name]
    return Optimizer(init, lambda p, g, st, **kw: step(p, g, st, **(hyper | kw)))
