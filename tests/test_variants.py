"""Attention sink and preconditioned NGD (ngdformer/variants.py): each identity checked two ways."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ngdformer as nf


def _task(seed, B=3, n=5, d=3, scale=1.0):
    rng = np.random.default_rng(seed)
    X, y, _ = nf.sample_tasks(rng, B, n, d)
    w = scale * rng.standard_normal((B, d))
    return rng, X, y, w


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), d=st.integers(1, 4))
def test_sink_loss_grad_matches_finite_differences(seed, n, d):
    rng, X, y, w = _task(seed, B=1, n=n, d=d)
    X, y, w = X[0], y[0], w[0]
    grad = nf.sink_loss_grad(w, X, y)
    num, ana = nf.check_directions(lambda v: float(nf.sink_loss(v, X, y)), w, grad, rng, directions=3)
    nf.assert_gradients_close(num, ana, "sink_loss_grad")
    jac = nf.numeric_jacobian(lambda v: nf.sink_loss(v, X, y), w)  # full gradient at a tiny shape
    nf.assert_gradients_close(jac, grad, "sink_loss_grad (full)")


def test_sink_loss_is_log_one_plus_sum_exp_and_finite_at_extremes():
    _, X, y, w = _task(0)
    m = nf.margins(w, X, y)
    assert np.allclose(nf.sink_loss(w, X, y), np.log1p(np.exp(-m).sum(-1)), rtol=1e-13)
    for s in (1e4, -1e4):
        assert np.all(np.isfinite(nf.sink_loss(s * w, X, y)))
        assert np.all(np.isfinite(nf.sink_loss_grad(s * w, X, y)))


def test_sink_weights_leave_the_rest_on_the_query():
    _, X, y, w = _task(1)
    q = nf.sink_weights(w, X, y)
    m = nf.margins(w, X, y)
    assert np.allclose(1.0 - q.sum(-1), 1.0 / (1.0 + np.exp(-m).sum(-1)), rtol=1e-12)


@pytest.mark.parametrize("eta", [0.1, 1.0, 3.0])
def test_self_attending_constructed_layer_is_a_sink_step(eta):
    _, X, y, w = _task(2, B=4, n=7, d=3)
    n, d = X.shape[-2:]
    W, V = nf.ngd_weights(d, eta)
    Z = nf.embed(X, y, w)
    out, _ = nf.attention_forward(Z, W, V, n, attend_self=True)
    naive = nf.attention_naive(Z, W, V, n, attend_self=True)
    expected = nf.sink_step(w, X, y, eta)
    assert nf.rel_error(nf.read_weights(out), expected) < 1e-13
    assert nf.rel_error(nf.read_weights(naive), expected) < 1e-13
    assert nf.rel_error(nf.read_weights(out), nf.ngd_step(w, X, y, eta)) > 1e-6  # a different step


def test_preconditioned_step_with_identity_is_ngd():
    _, X, y, w = _task(3)
    assert nf.rel_error(nf.preconditioned_ngd_step(w, X, y, 0.5, np.eye(3)), nf.ngd_step(w, X, y, 0.5)) < 1e-14


@pytest.mark.parametrize("scale", [0.0, 1.0, 1e3])
def test_preconditioned_layer_is_a_preconditioned_step(scale):
    rng, X, y, w = _task(4, B=5, n=6, d=4, scale=scale)
    A = rng.standard_normal((4, 4))
    P = A @ A.T + 0.1 * np.eye(4)
    W, V = nf.preconditioned_weights(4, 0.7, P)
    assert nf.context_is_inert(W, V)
    out, _ = nf.attention_forward(nf.embed(X, y, w), W, V, 6)
    direct = w + 0.7 * np.einsum("de,be->bd", P, np.einsum("bn,bn,bnd->bd", nf.ngd_coefficients(w, X, y), y, X))
    assert nf.rel_error(nf.read_weights(out), nf.preconditioned_ngd_step(w, X, y, 0.7, P)) < 1e-13
    assert nf.rel_error(direct, nf.preconditioned_ngd_step(w, X, y, 0.7, P)) < 1e-13


@pytest.mark.parametrize("scale", [0.0, 1.0, 30.0])
def test_a_non_symmetric_preconditioner_multiplies_the_column_vector_from_the_left(scale):
    """The documented convention w + eta P g (g = sum_i p_i y_i x_i a column), not w + eta P^T g.

    Every other test uses a symmetric P, for which the two agree; here P is not symmetric, and the step,
    the layer of preconditioned_weights and a formula written out task by task must all agree."""
    rng, X, y, w = _task(7, B=3, n=6, d=3, scale=scale)
    P = rng.standard_normal((3, 3)) + 2.0 * np.eye(3)
    assert np.max(np.abs(P - P.T)) > 0.5
    eta = 0.4
    expected, transposed = np.empty_like(w), np.empty_like(w)
    for b in range(3):
        m = np.array([y[b, i] * (X[b, i] @ w[b]) for i in range(6)])
        p = np.exp(-(m - m.min()))  # softmax(-m), shifted by its largest entry
        p /= p.sum()
        g = sum(p[i] * y[b, i] * X[b, i] for i in range(6))  # (d,) a column vector
        expected[b] = w[b] + eta * (P @ g)
        transposed[b] = w[b] + eta * (P.T @ g)  # the other convention
    step = nf.preconditioned_ngd_step(w, X, y, eta, P)
    assert nf.rel_error(step, expected) < 1e-13
    W, V = nf.preconditioned_weights(3, eta, P)
    out, _ = nf.attention_forward(nf.embed(X, y, w), W, V, 6)
    assert nf.rel_error(nf.read_weights(out), expected) < 1e-13
    assert nf.rel_error(transposed, expected) > 1e-2  # the test tells the two conventions apart


def test_preconditioned_ngd_is_ngd_in_whitened_coordinates():
    """w = P^{1/2} u with data P^{1/2} x: preconditioned NGD on w is plain NGD on u."""
    rng, X, y, w = _task(5, B=2, n=8, d=3)
    A = rng.standard_normal((3, 3))
    P = A @ A.T + 0.5 * np.eye(3)
    lam, Q = np.linalg.eigh(P)
    R = Q @ np.diag(np.sqrt(lam)) @ Q.T  # P^{1/2}
    u = np.linalg.solve(R, w.T).T
    w_next = nf.preconditioned_ngd_step(w, X, y, 0.3, P)
    u_next = nf.ngd_step(u, X @ R, y, 0.3)  # rows x^T R = (R x)^T
    assert nf.rel_error(w_next, u_next @ R) < 1e-13


def test_bad_inputs_raise():
    _, X, y, w = _task(6)
    with pytest.raises(ValueError, match="P has shape"):
        nf.preconditioned_ngd_step(w, X, y, 0.1, np.eye(2))
    with pytest.raises(ValueError, match="eta"):
        nf.preconditioned_weights(3, -1.0, np.eye(3))
    with pytest.raises(ValueError, match="eta"):
        nf.sink_step(w, X, y, 0.0)
