"""Chapter 09 checkers: True on the package's answer, a named AssertionError on each usual mistake, False on a stub."""

import numpy as np

import ngdformer as nf
import ngdformer.experiments.ch09 as ex
from checker_contract import assert_checker_contract
from ngdformer.exercises import ch09


# ---------------------------------------------------------------------------------------
# exercise 1: a lift for the circle task
# ---------------------------------------------------------------------------------------

def _lift(X):
    return np.concatenate([X * X, np.ones(X.shape[:-1] + (1,))], axis=-1)


def _lift_in_place(X):
    X *= X  # squares written into the caller's array
    return np.concatenate([X, np.ones(X.shape[:-1] + (1,))], axis=-1)


def test_check_lift():
    assert_checker_contract(ch09.check_lift, _lift, mistakes={
        r"features are odd": lambda X: X,  # the raw points
        r"odd": lambda X: np.concatenate([X, X ** 3], axis=-1),
        r"needs a bias term.*constant feature": lambda X: X * X,
        r"features on the last axis": lambda X: np.swapaxes(_lift(X), -1, -2),
        r"modified X in place \(mutating the input\)": _lift_in_place,
        r"fails on a single context .* last axis": lambda X: np.concatenate(
            [X[:, :, :1] ** 2 + X[:, :, 1:] ** 2, np.ones(X.shape[:-1] + (1,))], axis=-1),
        r"sign of a linear function of your features": lambda X: np.concatenate(  # x2^2 is missing
            [X[..., :1] ** 2, X[..., :1] * X[..., 1:], np.ones(X.shape[:-1] + (1,))], axis=-1),
    })


def test_lift_checker_accepts_other_lifts():
    assert ch09.check_lift(lambda X: np.concatenate([X, X * X, np.ones(X.shape[:-1] + (1,))], axis=-1)) is True


# ---------------------------------------------------------------------------------------
# capstone, part a: the batch
# ---------------------------------------------------------------------------------------

def _batch_with(step_fn, **kwargs):
    """A batch in the answer key's draw order whose target bottom half is ``step_fn(w0, X, y, eta, P)``."""
    def my_precond_batch(rng, batch, n, d, eta, P):
        X, y, _ = nf.sample_tasks(rng, batch, n, d)
        w0 = kwargs.get("scale", 1.0 / np.sqrt(d)) * rng.standard_normal((batch, d))
        target = np.zeros((batch, 2 * d))
        target[:, d:] = step_fn(w0, X, y, eta, P)
        return nf.embed(X, kwargs.get("labels", lambda y: y)(y), w0), target
    return my_precond_batch


def _right(w0, X, y, eta, P):
    return nf.preconditioned_ngd_step(w0, X, y, eta, P)


def _tokens_as_rows(rng, batch, n, d, eta, P):
    Z, target = ex.preconditioned_batch(rng, batch, n, d, eta, P)
    return np.swapaxes(Z, -1, -2), target


def _mutates_P(rng, batch, n, d, eta, P):
    P *= 2.0
    return ex.preconditioned_batch(rng, batch, n, d, eta, P / 2.0)


def _fresh_generator(rng, batch, n, d, eta, P):
    return ex.preconditioned_batch(np.random.default_rng(), batch, n, d, eta, P)


def _bottom_half_only(rng, batch, n, d, eta, P):
    Z, target = ex.preconditioned_batch(rng, batch, n, d, eta, P)
    return Z, target[:, d:]


def _halves_swapped(rng, batch, n, d, eta, P):
    Z, target = ex.preconditioned_batch(rng, batch, n, d, eta, P)
    return np.concatenate([Z[:, d:], Z[:, :d]], axis=1), target


def test_check_precond_batch():
    assert_checker_contract(ch09.check_precond_batch, ex.preconditioned_batch, mistakes={
        r"ignores P: that is the plain NGD step": _batch_with(lambda w0, X, y, eta, P: nf.ngd_step(w0, X, y, eta)),
        r"P is applied transposed": _batch_with(lambda w0, X, y, eta, P: _right(w0, X, y, eta, P.T)),
        r"the step goes the wrong way": _batch_with(lambda w0, X, y, eta, P: 2 * w0 - _right(w0, X, y, eta, P)),
        r"favours the well-classified examples": _batch_with(lambda w0, X, y, eta, P: _right(w0, X, -y, eta, -P)),
        r"only the step": _batch_with(lambda w0, X, y, eta, P: _right(w0, X, y, eta, P) - w0),
        r"misses the step size eta": _batch_with(lambda w0, X, y, eta, P: _right(w0, X, y, 1.0, P)),
        r"tokens are columns: expected shape \(B, 2d, n \+ 1\)": _tokens_as_rows,
        r"P was modified in place": _mutates_P,
        r"same seed differ": _fresh_generator,
        r"whole query column": _bottom_half_only,
        r"wrong block": _halves_swapped,
        r"w0 is zero": _batch_with(_right, scale=0.0),
        r"forgot y": _batch_with(lambda w0, X, y, eta, P: _right(w0, X, np.ones_like(y), eta, P),
                                 labels=np.ones_like),
    })


def test_precond_batch_checker_names_equal_weights():
    def equal_weights(w0, X, y, eta, P):
        return w0 + eta * np.mean(y[..., None] * X, axis=-2) @ P.T
    assert_checker_contract(ch09.check_precond_batch, ex.preconditioned_batch,
                            mistakes={r"equal weights": _batch_with(equal_weights)})


def test_precond_batch_checker_accepts_another_draw_order():
    def w0_first(rng, batch, n, d, eta, P):
        w0 = rng.standard_normal((batch, d))
        X, y, _ = nf.sample_tasks(rng, batch, n, d)
        target = np.zeros((batch, 2 * d))
        target[:, d:] = nf.preconditioned_ngd_step(w0, X, y, eta, P)
        return nf.embed(X, y, w0), target
    assert ch09.check_precond_batch(w0_first) is True


# ---------------------------------------------------------------------------------------
# capstone, part b: the training
# ---------------------------------------------------------------------------------------

def _trained_with(P_of):
    """The answer key's training on the preconditioner ``P_of(P)`` (a wrong target unless P_of is the identity)."""
    return lambda rng, P, n, d, eta, iterations: ex.train_preconditioned(rng, P_of(P), n, d, eta, iterations)


def _trained_with_eta_missing(rng, P, n, d, eta, iterations):
    """Targets with the step eta * P replaced by P: the layer learns V21 = P."""
    return ex.train_preconditioned(rng, P / eta, n, d, eta, iterations)


def _uphill(rng, P, n, d, eta, iterations):
    """Gradient ascent on the one-step loss for a few steps."""
    W, V = 0.1 * np.ones((2 * d, 2 * d)), 0.1 * np.ones((2 * d, 2 * d))
    for _ in range(20):
        Z, target = ex.preconditioned_batch(rng, 32, n, d, eta, P)
        _, dW, dV = nf.one_step_loss(W, V, Z, target)
        W, V = W + 0.1 * dW, V + 0.1 * dV
    return W, V


def _swapped(rng, P, n, d, eta, iterations):
    W, V = ex.train_preconditioned(rng, P, n, d, eta, iterations)
    return V, W


def _too_short(rng, P, n, d, eta, iterations):
    return ex.train_preconditioned(rng, P, n, d, eta, 30)


def test_check_train_preconditioned():
    assert_checker_contract(ch09.check_train_preconditioned, ex.train_preconditioned, mistakes={
        r"learned plain NGD": _trained_with(lambda P: np.eye(len(P))),
        r"P transposed": _trained_with(lambda P: P.T),
        r"step of the opposite sign": _trained_with(lambda P: -P),
        r"without the step size eta": _trained_with_eta_missing,
        r"no closer .* than the zero start .* uphill": _uphill,
        r"W and V are swapped": _swapped,
        r"above the bound": _too_short,
        r"full \(2d, 2d\)": lambda rng, P, n, d, eta, its: (-np.eye(d), eta * P),
    })


def test_train_checker_accepts_chapter_06_recipe():
    """Chapter 06's learning rate (0.02, cosine) also passes: the bound is not tuned to the answer key."""
    assert ch09.check_train_preconditioned(
        lambda rng, P, n, d, eta, its: ex.train_preconditioned(rng, P, n, d, eta, its, lr=0.02)) is True


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    "my_lift": (
        "import numpy as np\n"
        "def my_lift(X):\n"
        "    return np.concatenate([X * X, np.ones(X.shape[:-1] + (1,))], axis=-1)\n"
    ),
    "my_precond_batch": (
        "import ngdformer.experiments.ch09 as ex\n"
        "def my_precond_batch(rng, batch, n, d, eta, P):\n"
        "    return ex.preconditioned_batch(rng, batch, n, d, eta, P)\n"
    ),
    "my_train_preconditioned": (
        "import ngdformer.experiments.ch09 as ex\n"
        "def my_train_preconditioned(rng, P, n, d, eta, iterations):\n"
        "    return ex.train_preconditioned(rng, P, n, d, eta, iterations)\n"
    ),
}
