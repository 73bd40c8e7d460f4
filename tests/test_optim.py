"""Hand-written optimizers against their textbook formulas on a small quadratic."""

import numpy as np
import pytest

from ngdformer.optim import adam_init, adam_update, cosine_lr, make_optimizer, sgd_init, sgd_update

A = np.array([[3.0, 0.5], [0.5, 1.0]])  # f(x) = 1/2 x^T A x - b^T x, minimiser A^{-1} b
b = np.array([1.0, -2.0])
x_min = np.linalg.solve(A, b)


def grad(x):
    return A @ x - b


def test_sgd_without_momentum_is_gradient_descent():
    x, state = (np.zeros(2),), sgd_init((np.zeros(2),))
    ref = np.zeros(2)
    for _ in range(20):
        (x_new,), state = sgd_update(x, (grad(x[0]),), state, lr=0.1)
        ref = ref - 0.1 * grad(ref)
        x = (x_new,)
    np.testing.assert_allclose(x[0], ref, rtol=1e-14, atol=1e-15)


def test_sgd_momentum_is_heavy_ball():
    """v = mu v + g, x -= lr v  equals the heavy-ball form x_{t+1} = x_t - lr g_t + mu (x_t - x_{t-1})."""
    lr, mu = 0.1, 0.8
    params, state = (np.zeros(2),), sgd_init((np.zeros(2),))
    prev, cur = np.zeros(2), np.zeros(2)
    for _ in range(30):
        params, state = sgd_update(params, (grad(params[0]),), state, lr=lr, momentum=mu)
        prev, cur = cur, cur - lr * grad(cur) + mu * (cur - prev)
        np.testing.assert_allclose(params[0], cur, rtol=1e-12, atol=1e-13)
    params2, _ = sgd_update((np.zeros(2),), (np.ones(2),), sgd_init((np.zeros(2),)), lr=lr, momentum=mu)
    np.testing.assert_allclose(params2[0], -lr * np.ones(2))  # first step: plain gradient step


def test_adam_matches_scalar_textbook_loop():
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    params, state = (np.array([2.0, -1.0]),), adam_init((np.zeros(2),))
    ref = [2.0, -1.0]
    m, s = [0.0, 0.0], [0.0, 0.0]
    for t in range(1, 41):
        g_ref = list(A @ np.array(ref) - b)
        for k in range(2):  # Kingma & Ba, Algorithm 1, one scalar at a time
            m[k] = b1 * m[k] + (1 - b1) * g_ref[k]
            s[k] = b2 * s[k] + (1 - b2) * g_ref[k] ** 2
            ref[k] -= lr * (m[k] / (1 - b1 ** t)) / ((s[k] / (1 - b2 ** t)) ** 0.5 + eps)
        params, state = adam_update(params, (grad(params[0]),), state, lr=lr)
        assert state.step == t
    np.testing.assert_allclose(params[0], ref, rtol=1e-12)


def test_adam_first_step_is_lr_times_sign():
    g = np.array([1e-3, -5.0, 0.0])
    (p,), _ = adam_update((np.zeros(3),), (g,), adam_init((np.zeros(3),)), lr=0.1)
    np.testing.assert_allclose(p, -0.1 * g / (np.abs(g) + 1e-8))
    assert p[2] == 0.0  # a zero gradient never moves an entry


@pytest.mark.parametrize("name, hyper, steps", [("sgd", {"lr": 0.2}, 200), ("sgd", {"lr": 0.1, "momentum": 0.9}, 450),
                                                 ("adam", {"lr": 0.05}, 1500)])
def test_optimizers_reach_the_minimiser(name, hyper, steps):
    opt = make_optimizer(name, **hyper)
    params = (np.array([4.0, 4.0]),)
    state = opt.init(params)
    for _ in range(steps):
        params, state = opt.update(params, (grad(params[0]),), state)
    np.testing.assert_allclose(params[0], x_min, atol=1e-6)


def test_updates_are_pure():
    x, g = np.ones(2), np.ones(2)
    state = adam_init((x,))
    adam_update((x,), (g,), state, lr=0.1)
    sgd_update((x,), (g,), sgd_init((x,)), lr=0.1, momentum=0.5)
    np.testing.assert_array_equal(x, np.ones(2))
    np.testing.assert_array_equal(state.m[0], np.zeros(2))


@pytest.mark.parametrize("call, match", [
    (lambda: sgd_update((np.ones(2),), (np.ones(3),), sgd_init((np.ones(2),)), lr=0.1), "shapes"),
    (lambda: sgd_update((np.ones(2),), (np.ones(2),), sgd_init((np.ones(2),)), lr=-1.0), "lr"),
    (lambda: sgd_update((np.ones(2),), (np.ones(2),), sgd_init((np.ones(2),)), lr=0.1, momentum=1.0), "momentum"),
    (lambda: adam_update((np.ones(2),), (np.ones(2),), adam_init((np.ones(2),)), lr=0.1, beta2=1.5), "beta2"),
    (lambda: adam_update((np.ones(2),), (np.array([np.nan, 0.0]),), adam_init((np.ones(2),)), lr=0.1), "grads"),
    (lambda: make_optimizer("rmsprop", lr=0.1), "optimizer"),
])
def test_bad_hyperparameters_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cosine_schedule_and_lr_override():
    assert cosine_lr(0.1, 0, 100) == 0.1 and cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-18)
    opt = make_optimizer("sgd", lr=1.0)
    (p,), _ = opt.update((np.zeros(1),), (np.ones(1),), opt.init((np.zeros(1),)), lr=0.25)
    assert p[0] == -0.25  # the per-call lr wins over the bound one
