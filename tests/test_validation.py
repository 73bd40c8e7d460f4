"""Bad input gets a ValueError that names the bad value or argument; nothing is silently fixed."""

import numpy as np
import pytest

from ngdformer import (attention_forward, embed, exp_log_loss, exp_loss, exp_loss_grad, gd, gd_step, logistic_loss,
                       logistic_loss_grad, looped_forward, margins, max_margin, ngd, ngd_coefficients, ngd_step,
                       ngd_weights, normalized_margin, read_weights, sample_points, sample_tasks)


def _ok(B=2, n=4, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X, y, w_star = sample_tasks(rng, B, n, d)
    return w_star.copy(), X, y


CONTEXT_FUNCTIONS = {
    "margins": margins, "exp_loss": exp_loss, "exp_log_loss": exp_log_loss, "exp_loss_grad": exp_loss_grad,
    "logistic_loss": logistic_loss, "logistic_loss_grad": logistic_loss_grad, "ngd_coefficients": ngd_coefficients,
    "ngd_step": lambda w, X, y: ngd_step(w, X, y, 0.1), "gd_step": lambda w, X, y: gd_step(w, X, y, 0.1),
    "ngd": lambda w, X, y: ngd(w, X, y, 0.1, 2), "gd": lambda w, X, y: gd(w, X, y, 0.1, 2),
    "normalized_margin": normalized_margin, "embed": lambda w, X, y: embed(X, y, w),
}
NAMES = sorted(CONTEXT_FUNCTIONS)
#: How a message names the weight argument: ``embed`` takes ``w0``; ``gd`` and ``ngd`` take ``w0`` too, and either
#: name passes here (tests/test_boundary_properties.py asks for the parameter's own name).
W_NAME = {"embed": "w0", "gd": "w0?", "ngd": "w0?"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [0.0, 2.0, -0.5])
def test_labels_outside_plus_minus_one(name, bad):
    w, X, y = _ok()
    y = y.copy()
    y[1, 2] = bad
    with pytest.raises(ValueError, match=rf"labels y must be in \{{-1, \+1\}}, found {bad}"):
        CONTEXT_FUNCTIONS[name](w, X, y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["X", "w"])
def test_non_finite_values(name, bad, where):
    w, X, y = _ok()
    if where == "X":
        X = X.copy()
        X[0, 1, 2] = bad
    else:
        w = w.copy()
        w[1, 0] = bad
    where = W_NAME.get(name, "w") if where == "w" else where
    with pytest.raises(ValueError, match=rf"^{where} contains a non-finite value \({bad}\)"):
        CONTEXT_FUNCTIONS[name](w, X, y)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes(name):
    w, X, y = _ok()
    f, w_name = CONTEXT_FUNCTIONS[name], W_NAME.get(name, "w")
    with pytest.raises(ValueError, match=rf"{w_name} has shape \(2, 4\) but X has shape \(2, 4, 3\)"):
        f(np.zeros((2, 4)), X, y)  # wrong d
    with pytest.raises(ValueError, match=rf"{w_name} has shape \(3, 3\) but X has shape \(2, 4, 3\)"):
        f(np.zeros((3, 3)), X, y)  # wrong batch
    with pytest.raises(ValueError, match=r"y has shape \(2, 5\) but X has shape \(2, 4, 3\)"):
        f(w, X, np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"y has shape \(4,\) but X has shape \(2, 4, 3\)"):
        f(w, X, np.ones(4))


@pytest.mark.parametrize("name", NAMES)
def test_empty_context(name):
    with pytest.raises(ValueError, match=r"empty context: X has shape \(2, 0, 3\) with n = 0"):
        CONTEXT_FUNCTIONS[name](np.zeros((2, 3)), np.zeros((2, 0, 3)), np.zeros((2, 0)))


def test_non_numeric_and_unknown_loss():
    w, X, y = _ok()
    with pytest.raises(ValueError, match="X must be real numeric"):
        exp_loss(w, np.full(X.shape, "a"), y)
    with pytest.raises(ValueError, match="X must be real numeric"):
        exp_loss(w, X.astype(complex), y)
    with pytest.raises(ValueError, match="loss must be 'exp' or 'logistic', got 'hinge'"):
        ngd_coefficients(w, X, y, "hinge")
    with pytest.raises(ValueError, match=r"loss must be one of \['exp', 'logistic'.*\], got 'hinge'"):
        gd_step(w, X, y, 0.1, loss="hinge")


@pytest.mark.parametrize("eta", [0.0, -0.1, np.nan, np.inf])
def test_step_size_must_be_positive(eta):
    w, X, y = _ok()
    pattern = rf"eta must be finite and > 0, got {eta!r}".replace("(", r"\(").replace(")", r"\)")
    for call in (lambda: ngd_step(w, X, y, eta), lambda: gd_step(w, X, y, eta), lambda: ngd_weights(3, eta),
                 lambda: ngd(w, X, y, eta, 3), lambda: gd(w, X, y, [0.1, eta], 2)):
        with pytest.raises(ValueError, match=pattern):
            call()
    with pytest.raises(ValueError, match=r"eta must be a scalar or have one entry per step \(3\), got shape \(2,\)"):
        ngd(w, X, y, [0.1, 0.2], 3)
    with pytest.raises(ValueError, match="eta must be a real number, got '0.1'"):
        ngd_step(w, X, y, "0.1")


def test_integer_hyper_parameters():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n must be finite and > 0, got 0"):
        sample_tasks(rng, 2, 0, 3)  # empty context
    with pytest.raises(ValueError, match="d must be an integer, got 2.5"):
        sample_tasks(rng, 2, 4, 2.5)
    with pytest.raises(ValueError, match="batch must be finite and > 0, got -1"):
        sample_tasks(rng, -1, 4, 3)
    with pytest.raises(ValueError, match="steps must be an integer, got 2.0"):
        ngd(*_ok(), 0.1, 2.0)
    with pytest.raises(ValueError, match="d must be finite and > 0, got 0"):
        ngd_weights(0, 0.1)


def test_sampling_options():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"cov must be positive semi-definite"):
        sample_tasks(rng, 2, 4, 2, cov=np.array([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match=r"cov must be symmetric"):
        sample_tasks(rng, 2, 4, 2, cov=np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cov has shape \(3, 3\), expected \(2, 2\)"):
        sample_tasks(rng, 2, 4, 2, cov=np.eye(3))
    with pytest.raises(ValueError, match=r"cov contains a non-finite value \(nan\)"):
        sample_tasks(rng, 2, 4, 2, cov=np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"flip must be in \[0, 1\), got 1.0"):
        sample_tasks(rng, 2, 4, 2, flip=1.0)
    with pytest.raises(ValueError, match=r"flip must be finite and >= 0, got -0.1"):
        sample_tasks(rng, 2, 4, 2, flip=-0.1)
    with pytest.raises(ValueError, match=r"margin must be finite and >= 0, got -1"):
        sample_tasks(rng, 2, 4, 2, margin=-1)
    with pytest.raises(ValueError, match=r"w_star contains a non-finite value \(inf\)"):
        sample_points(rng, np.array([[np.inf, 0.0]]), 3)


# --- tokens and layer weights ------------------------------------------------------------------------


def _tokens():
    w, X, y = _ok(B=2, n=4, d=2)
    W, V = ngd_weights(2, 0.1)
    return embed(X, y, w), W, V  # Z (2, 4, 5)


@pytest.mark.parametrize("n_context", [0, 5, 6, -1])
def test_n_context_out_of_range(n_context):
    Z, W, V = _tokens()
    with pytest.raises(ValueError, match=rf"n_context = {n_context} is out of range: Z has N = 5 columns"):
        attention_forward(Z, W, V, n_context)
    with pytest.raises(ValueError, match=rf"n_context = {n_context} is out of range"):
        looped_forward(Z, W, V, n_context, 2)


@pytest.mark.parametrize("n_context", [2.0, 1.5, "3", None, True])
def test_n_context_not_an_integer(n_context):
    Z, W, V = _tokens()
    with pytest.raises(ValueError, match=rf"n_context must be an integer, got {n_context!r}"):
        attention_forward(Z, W, V, n_context)


@pytest.mark.parametrize("where", ["Z", "W", "V"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_tokens_and_weights(where, bad):
    Z, W, V = _tokens()
    arrays = {"Z": Z.copy(), "W": W.copy(), "V": V.copy()}
    arrays[where][(0,) * arrays[where].ndim] = bad
    with pytest.raises(ValueError, match=rf"^{where} contains a non-finite value \({bad}\)"):
        attention_forward(arrays["Z"], arrays["W"], arrays["V"], 4)


def test_weight_and_token_shapes():
    Z, W, V = _tokens()
    with pytest.raises(ValueError, match=r"W has shape \(6, 6\), expected \(4, 4\) to match Z with D = 4 rows"):
        attention_forward(Z, np.zeros((6, 6)), V, 4)
    with pytest.raises(ValueError, match=r"V has shape \(4, 3\), expected \(4, 4\)"):
        attention_forward(Z, W, np.zeros((4, 3)), 4)
    with pytest.raises(ValueError, match="Z must have an even, positive number of rows D = 2d, got D = 3"):
        attention_forward(Z[:, :3], W[:3, :3], V[:3, :3], 4)
    with pytest.raises(ValueError, match=r"Z must have at least 2 dimensions, got shape \(4,\)"):
        attention_forward(np.zeros(4), W, V, 1)
    with pytest.raises(ValueError, match="Z must have an even, positive number of rows D = 2d, got D = 3"):
        read_weights(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"n_context = 1 is out of range: Z has N = 1 columns"):
        attention_forward(Z[..., :1], W, V, 1)  # a query and no context


# --- max margin on data that is not separable through the origin -------------------------------------


def test_max_margin_rejects_flip_noise():
    # two messages are possible: a Gordan certificate / divergence ("is not linearly separable"), or, when neither
    # shows within max_iter Newton steps, "no certificate ... the context is not separable"; both name the task
    for seed in range(4):
        X, y, _ = sample_tasks(np.random.default_rng(seed), 1, 40, 2, flip=0.3)
        with pytest.raises(ValueError, match=r"batch index \(0,\).* not (linearly )?separable"):
            max_margin(X, y)
    X, y, _ = sample_tasks(np.random.default_rng(0), 4, 40, 2)
    _, y_noisy, _ = sample_tasks(np.random.default_rng(0), 4, 40, 2, flip=0.3)  # same points, flipped labels
    y = np.concatenate([y[:2], y_noisy[2:3], y[3:]])
    with pytest.raises(ValueError, match=r"batch index \(2,\).* not (linearly )?separable"):
        max_margin(X, y)  # the error points at the one bad task


def test_max_margin_rejects_x_and_minus_x_with_the_same_label():
    X, y, _ = sample_tasks(np.random.default_rng(1), 3, 6, 3)
    X = X.copy()
    X[1, 5] = -X[1, 0]
    y = y.copy()
    y[1, 5] = y[1, 0]
    with pytest.raises(ValueError, match=r"batch index \(1,\) is not linearly separable through the origin"):
        max_margin(X, y)
    with pytest.raises(ValueError, match=r"batch index \(0,\) is not linearly separable"):
        max_margin(np.array([[[1.0, 2.0], [-1.0, -2.0]]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="not linearly separable"):
        max_margin(np.zeros((1, 3, 2)), np.ones((1, 3)))  # every point at the origin
