"""Backpropagation through L stacked or looped layers against central differences (chapter 03).

For L = 1..4, stacked (one (W, V) per layer) and looped (one shared (W, V), gradients added
over the applications), full layer and query-only, with and without self-attention.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ngdformer import (assert_gradients_close, attention_backward, check_directions, context_is_inert, fast,
                       looped_backward, looped_forward, looped_forward_with_cache, numeric_jacobian, stack_backward,
                       stack_forward)
from numerics import scaled_error

shapes = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1), "L": st.integers(1, 4), "d": st.integers(1, 3), "n": st.integers(1, 4),
    "B": st.integers(1, 2), "query_only": st.booleans(), "attend_self": st.booleans()})


def _setup(s, tiny=False):
    rng = np.random.default_rng(s["seed"])
    d, n = (1, min(s["n"], 2)) if tiny else (s["d"], s["n"])
    D, N = 2 * d, n + 1
    Z = rng.standard_normal((s["B"], D, N))
    # entries 0.5 / sqrt(D): with 0.5 at D = 2 a rare draw explodes over four layers (derivatives near 1e4),
    # where central differences lose their accuracy (one failure in 10^4 examples)
    layers = [tuple(0.5 / np.sqrt(D) * rng.standard_normal((2, D, D))) for _ in range(s["L"])]
    G = rng.standard_normal(Z.shape)  # upstream gradient: f = sum(G * out)
    kw = {"query_only": s["query_only"], "attend_self": s["attend_self"]}
    return rng, Z, layers, G, n, kw


def _shared(layers, query_only):
    """The looped model's one layer; a query-only loop is the same model only for inert weights, so make them so."""
    W, V = (M.copy() for M in layers[0])
    if query_only:
        d = W.shape[0] // 2
        W[d:, :], V[:d, :], V[:, d:] = 0.0, 0.0, 0.0
        assert context_is_inert(W, V)
    return W, V


def _shared_stack(Z, W, V, n, L, kw):
    """The looped model as a function of its weights, also at perturbed (not inert) weights: L copies stacked."""
    return stack_forward(Z, [(W, V)] * L, n, **kw)[0]


@given(shapes)
def test_stacked_backward_matches_finite_differences(s):
    rng, Z, layers, G, n, kw = _setup(s)
    out, caches = stack_forward(Z, layers, n, **kw)
    dZ, grads = stack_backward(G, caches)
    f_of_Z = lambda z: np.sum(G * stack_forward(z, layers, n, **kw)[0])  # noqa: E731
    assert_gradients_close(*check_directions(f_of_Z, Z, dZ, rng, 2), "stacked dZ")
    for k, ((W, V), (dW, dV)) in enumerate(zip(layers, grads)):
        def f(W_k, V_k, k=k):
            new = layers[:k] + [(W_k, V_k)] + layers[k + 1:]
            return np.sum(G * stack_forward(Z, new, n, **kw)[0])
        assert_gradients_close(*check_directions(lambda w: f(w, V), W, dW, rng, 2), f"stacked dW[{k}]")
        assert_gradients_close(*check_directions(lambda v: f(W, v), V, dV, rng, 2), f"stacked dV[{k}]")


@given(shapes.filter(lambda s: s["L"] >= 2))
def test_each_layer_of_a_stack_gets_its_own_gradient(s):
    """Different layers, checked without the package's gradient checker: layer k's (dW, dV) equal

    (a) attention_backward called by hand on layer k's cache, fed the gradient undone by hand through
        the layers after k, and
    (b) central differences written here, perturbing only layer k along a random direction.

    A list in the wrong order (or one layer's gradient repeated) gives another layer's numbers."""
    rng, Z, layers, G, n, kw = _setup(s)
    layers = [(c * W, c * V) for c, (W, V) in zip(np.linspace(0.5, 1.5, len(layers)), layers)]  # all different
    _, caches = stack_forward(Z, layers, n, **kw)
    dZ, grads = stack_backward(G, caches)
    assert len(grads) == len(layers)
    h = 1e-6
    for k in range(len(layers)):
        g = G
        for cache in caches[:k:-1]:  # the layers after k, last first
            g = attention_backward(g, cache)[0]
        _, dW_k, dV_k = attention_backward(g, caches[k])
        np.testing.assert_array_equal(grads[k][0], dW_k)
        np.testing.assert_array_equal(grads[k][1], dV_k)
        for which in (0, 1):  # W_k, then V_k
            direction = rng.standard_normal(layers[k][which].shape)

            def J(t, k=k, which=which, direction=direction):
                pair = list(layers[k])
                pair[which] = pair[which] + t * direction
                return float(np.sum(G * stack_forward(Z, layers[:k] + [tuple(pair)] + layers[k + 1:], n, **kw)[0]))

            num, ana = (J(h) - J(-h)) / (2 * h), float(np.sum(grads[k][which] * direction))
            assert abs(num - ana) <= 1e-6 + 1e-5 * abs(ana), (k, "WV"[which], num, ana)
    g = G
    for cache in reversed(caches):  # and dZ is every layer undone by hand
        g = attention_backward(g, cache)[0]
    np.testing.assert_array_equal(dZ, g)


@given(shapes)
def test_looped_backward_matches_finite_differences(s):
    rng, Z, layers, G, n, kw = _setup(s)
    W, V = _shared(layers, s["query_only"])
    L = s["L"]
    out, caches = looped_forward_with_cache(Z, W, V, n, L, **kw)
    np.testing.assert_allclose(out, looped_forward(Z, W, V, n, L, **kw), rtol=1e-13, atol=1e-13)
    dZ, dW, dV = looped_backward(G, caches)
    f = lambda z, w, v: np.sum(G * _shared_stack(z, w, v, n, L, kw))  # noqa: E731
    assert_gradients_close(*check_directions(lambda z: f(z, W, V), Z, dZ, rng, 2), "looped dZ")
    assert_gradients_close(*check_directions(lambda w: f(Z, w, V), W, dW, rng, 2), "looped dW")
    assert_gradients_close(*check_directions(lambda v: f(Z, W, v), V, dV, rng, 2), "looped dV")


@given(shapes)
def test_looped_backward_full_jacobian_at_tiny_shapes(s):
    _, Z, layers, _, n, kw = _setup(s, tiny=True)
    W, V = _shared(layers, s["query_only"])
    L = s["L"]
    F = lambda z, w, v: _shared_stack(z, w, v, n, L, kw)  # noqa: E731
    out, caches = looped_forward_with_cache(Z, W, V, n, L, **kw)
    for name, x, Fx in (("Z", Z, lambda z: F(z, W, V)), ("W", W, lambda w: F(Z, w, V)), ("V", V, lambda v: F(Z, W, v))):
        J = numeric_jacobian(Fx, x)  # out.shape + x.shape
        for idx in np.ndindex(out.shape):  # one upstream unit vector per output entry: the rows of J
            e = np.zeros(out.shape)
            e[idx] = 1.0
            grads = dict(zip("ZWV", looped_backward(e, caches)))
            assert_gradients_close(J[idx], grads[name], f"Jacobian row {idx} wrt {name}")


def test_looped_equals_stacked_with_shared_weights():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((3, 4, 5))
    W, V = 0.5 * rng.standard_normal((4, 4)), 0.5 * rng.standard_normal((4, 4))
    G = rng.standard_normal(Z.shape)
    out_l, caches_l = looped_forward_with_cache(Z, W, V, 4, 3)
    out_s, caches_s = stack_forward(Z, [(W, V)] * 3, 4)
    np.testing.assert_array_equal(out_l, out_s)
    dZ, dW, dV = looped_backward(G, caches_l)
    dZ_s, grads = stack_backward(G, caches_s)
    np.testing.assert_array_equal(dZ, dZ_s)
    np.testing.assert_allclose(dW, sum(g[0] for g in grads), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dV, sum(g[1] for g in grads), rtol=1e-14, atol=1e-14)
    assert not np.allclose(dW, grads[0][0])  # every application contributes, not only one


@given(shapes)
def test_fast_looped_backward_equals_the_textbook(s):
    """The fast looped forward with caches and its backward (used by training) against the textbook loop."""
    _, Z, layers, G, n, kw = _setup(s)
    W, V = _shared(layers, False)
    out, caches = looped_forward_with_cache(Z, W, V, n, s["L"], attend_self=kw["attend_self"])
    out_f, caches_f = fast.looped_forward_with_cache(Z, W, V, n, s["L"], attend_self=kw["attend_self"])
    np.testing.assert_allclose(out_f, out, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fast.looped_forward(Z, W, V, n, s["L"], attend_self=kw["attend_self"]), out,
                               rtol=1e-13, atol=1e-13)
    expected = looped_backward(G, caches)
    scale = max(np.max(np.abs(g)) for g in expected + (G,))  # a gradient can be exactly 0 in one route only
    for got, expect in zip(fast.looped_backward(G, caches_f), expected):
        assert scaled_error(got, expect, scale) <= 1e-11  # worst measured 4.3e-14 over 10^4 cases


def test_depth_zero_backward_passes_the_gradient_through():
    Z = np.random.default_rng(1).standard_normal((2, 4, 3))
    for forward, backward in ((looped_forward_with_cache, looped_backward),
                              (fast.looped_forward_with_cache, fast.looped_backward)):
        out, caches = forward(Z, np.eye(4), np.eye(4), 2, 0)
        np.testing.assert_array_equal(out, Z)
        dZ, dW, dV = backward(np.ones_like(Z), caches)
        np.testing.assert_array_equal(dZ, np.ones_like(Z))
        assert not dW.any() and not dV.any() and dW.shape == (4, 4)
