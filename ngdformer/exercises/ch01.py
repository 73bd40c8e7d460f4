"""Checkers for chapter 01, the logistic loss in context (see ``ngdformer.exercises`` for the contract).

Both build-it exercises take ``w`` (..., d), ``X`` (..., n, d), ``y`` (..., n). The checkers call
the student's function on one task, on a batch and on two batch axes, with ``B``, ``n`` and
``d`` all different so that a wrong axis changes the shape, then at margins of order
:math:`\\pm 10^4` with NumPy's overflow warnings recorded. The answer keys are
``ngdformer/losses.py``: :func:`ngdformer.logistic_loss` and :func:`ngdformer.logistic_loss_grad`.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..gradcheck import assert_gradients_close, check_directions
from ..losses import exp_loss_grad, logistic_loss, logistic_loss_grad
from . import NotAttempted, attempt, checker, compare

N, D = 7, 4  # context size and input dimension of the checks; batches are (3,) and (2, 3)
LAYOUTS = (("one task", ()), ("a batch of tasks", (3,)), ("two batch axes", (2, 3)))
BIG = 1e4  # |margins| of this order in the overflow check


def _compare(name: str, got, expected, alternatives) -> None:
    """:func:`compare`, with ``name`` (which layout) also in front of a shape mistake's message."""
    try:
        compare(name, got, expected, alternatives=alternatives)
    except AssertionError as exc:
        message = str(exc)
        raise AssertionError(message if message.startswith(name) else f"{name}: {message}") from None


def _inputs(rng: np.random.Generator, batch: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w (*batch, D), X (*batch, N, D), y (*batch, N) with both labels present in every task."""
    X = rng.standard_normal(batch + (N, D))
    y = rng.choice([-1.0, 1.0], size=batch + (N,))
    y[..., 0], y[..., 1] = 1.0, -1.0
    return rng.standard_normal(batch + (D,)), X, y


def _shapes(w, X, y) -> str:
    return f"w {w.shape}, X {X.shape}, y {y.shape}"


def _call(fn, w, X, y):
    """The student's ``fn(w, X, y)`` on copies, with overflow warnings recorded.

    Returns (result as a float array, list of RuntimeWarning messages). Raises AssertionError
    if ``fn`` raised (naming the shapes), changed an input in place, or returned no numbers.
    """
    args = [a.copy() for a in (w, X, y)]
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="warn", invalid="warn", divide="warn"):
        warnings.simplefilter("always")
        try:
            out = attempt(fn, *args)
        except (NotAttempted, AssertionError):
            raise
        except Exception as exc:
            hint = ("; it must accept any number of leading batch axes (index the context and the input dimension "
                    "from the end, axes -2 and -1 of X)") if isinstance(exc, (ValueError, IndexError)) else ""
            raise AssertionError(f"your function raised {type(exc).__name__} ({exc}) on {_shapes(w, X, y)}"
                                 + hint) from exc
    for name, before, after in zip("wXy", (w, X, y), args):
        if not np.array_equal(before, after):
            raise AssertionError(f"your function changed its input {name} in place: work on new arrays, "
                                 "a caller's data must come back untouched")
    try:
        out = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"expected an array of numbers, got {type(out).__name__}") from None
    return out, [str(c.message) for c in caught if issubclass(c.category, RuntimeWarning)]


def _quiet(f, *args):
    with np.errstate(all="ignore"):
        return f(*args)


def _per_axis_mistakes(terms, kept_axes: int, what: str):
    """Means of ``terms`` over each leading (batch) axis, and over everything: a fixed or wrong axis."""
    out = [(f"the {what} is averaged over axis {ax}, a batch axis: average over the n examples of each task "
            "(count the axes from the end so that any number of batch axes works)", terms.mean(axis=ax))
           for ax in range(terms.ndim - kept_axes - 1)]
    if terms.ndim > kept_axes + 1:
        out.append((f"one {what} for all the tasks together: each task (each index of the batch axes) gets its own",
                    terms.mean(axis=tuple(range(terms.ndim - kept_axes)))))
    return out


def _loss_mistakes(w, X, y):
    """(message, wrong answer) pairs for the usual mistakes in the logistic loss."""
    def loss(m, reduce=np.mean):
        return reduce(np.logaddexp(0.0, -m), axis=-1)
    s = np.einsum("...nd,...d->...n", X, w)  # (..., n), <w, x_i> without the labels
    m = y * s
    wrong = [
        ("the labels y are missing from the margins", loss(s)),
        ("the sign of the margin is flipped: the loss must be small where w classifies the points correctly",
         loss(-m)),
        ("this is a sum over the context: the loss is the average over the n examples", loss(m, np.sum)),
        ("this is the exponential loss, not the logistic one", _quiet(lambda: np.mean(np.exp(-m), axis=-1))),
    ]
    return wrong + _per_axis_mistakes(np.logaddexp(0.0, -m), 0, "loss")


def _grad_mistakes(w, X, y):
    """(message, wrong answer) pairs for the usual mistakes in the logistic gradient."""
    s = np.einsum("...nd,...d->...n", X, w)  # (..., n)
    m = y * s
    n = X.shape[-2]

    def grad(weights, labels_in_sum=True):  # -(1/n) sum_i weights_i (y_i) x_i
        c = weights * y if labels_in_sum else weights
        return -np.einsum("...n,...nd->...d", c, X) / n

    sig = _quiet(lambda z: 1.0 / (1.0 + np.exp(-z)), -m)  # sigma(-m)
    expected = grad(sig)
    wrong = [
        ("the sign is flipped: minus the gradient must point downhill (a GD step lowers the loss)", -expected),
        ("the labels y are missing from the sum over examples", grad(sig, labels_in_sum=False)),
        ("the labels y are missing from the margins", grad(_quiet(lambda z: 1.0 / (1.0 + np.exp(z)), s))),
        ("the labels y are missing (from the margins and from the sum)",
         grad(_quiet(lambda z: 1.0 / (1.0 + np.exp(z)), s), labels_in_sum=False)),
        ("this is a sum over the context: the loss, hence its gradient, averages over the n examples", n * expected),
        ("the per-example weights are reversed: a well-classified point (large margin) must get a small weight",
         grad(_quiet(lambda z: 1.0 / (1.0 + np.exp(-z)), m))),
        ("this is the exponential loss's gradient (weights exp(-m)), not the logistic one's", _quiet(exp_loss_grad, w, X, y)),
    ]
    if X.ndim > 2:
        wrong.append(("the result is transposed: the gradient has the shape of w", np.swapaxes(expected, -1, -2)))
        B = int(np.prod(X.shape[:-2]))
        wrong.append(("divided by the number of tasks too: each task's loss is a mean over its own n examples, "
                      "the tasks are not averaged", expected / B))
    per_example = -(sig * y)[..., None] * X  # (..., n, d)
    wrong.append(("averaged over the input dimension d instead of over the n examples", per_example.mean(axis=-1)))
    return wrong + _per_axis_mistakes(per_example, 1, "gradient")


def _check_extreme(name: str, got, warned, expected, alternatives) -> None:
    """At margins of order 1e4: finite, no overflow warning, and right."""
    where = "at margins of order +-1e4"
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{name} {where}: contains inf or nan: an overflow (exp of a large positive "
                             "number is inf, and inf / inf is nan). Rewrite it so that no exp ever sees a "
                             "large positive argument")
    if warned:
        raise AssertionError(f"{name} {where}: the result is finite but NumPy warned {warned[0]!r}: an "
                             "intermediate overflowed. exp must never see a large positive argument (and "
                             "np.where evaluates both branches, so neither branch may overflow)")
    _compare(f"{name} {where}", got, expected, alternatives)


@checker("logistic loss")
def check_logistic_loss(my_logistic_loss) -> str:
    r"""``my_logistic_loss(w, X, y)`` -> the logistic loss, shape (...), finite and quiet at margins of :math:`\pm 10^4`.

    Compared with :func:`ngdformer.logistic_loss` on one task, a batch and two batch axes,
    then at huge margins. Named mistakes: the labels forgotten, the margin's sign, a sum
    instead of the mean, the exponential loss, a batch axis averaged, an input changed in
    place, an overflow (inf, nan or an overflow warning).
    """
    rng = np.random.default_rng(101)
    for label, batch in LAYOUTS:
        w, X, y = _inputs(rng, batch)
        got, _ = _call(my_logistic_loss, w, X, y)
        _compare(f"the loss for {label} ({_shapes(w, X, y)})", got, logistic_loss(w, X, y), _loss_mistakes(w, X, y))
    w, X, y = _inputs(rng, (3,))
    big = BIG * w / np.linalg.norm(w, axis=-1, keepdims=True)  # margins of order 1e4, both signs
    got, warned = _call(my_logistic_loss, big, X, y)
    _check_extreme("the loss", got, warned, logistic_loss(big, X, y), _loss_mistakes(big, X, y))
    return "3 layouts and margins of order +-1e4"


@checker("logistic loss gradient")
def check_logistic_loss_grad(my_logistic_loss_grad, my_logistic_loss=None) -> str:
    r"""``my_logistic_loss_grad(w, X, y)`` -> :math:`\nabla\mathcal L(w)`, shape (..., d), finite and quiet at huge margins.

    Compared with :func:`ngdformer.logistic_loss_grad` on one task, a batch and two batch
    axes, then at margins of :math:`\pm 10^4`; then the package's gradient checker
    (:func:`ngdformer.check_directions`, :func:`ngdformer.assert_gradients_close`) compares it
    with central differences of ``my_logistic_loss`` (the package's loss if that is not given
    or not attempted yet). Named mistakes: the sign, the labels forgotten, a sum instead of the
    mean, reversed weights, the exponential loss's gradient, a transposed result, a 1/B, the
    wrong axis, an input changed in place, an overflow.
    """
    rng = np.random.default_rng(102)
    cases = []
    for label, batch in LAYOUTS:
        w, X, y = _inputs(rng, batch)
        got, _ = _call(my_logistic_loss_grad, w, X, y)
        _compare(f"the gradient for {label} ({_shapes(w, X, y)})", got, logistic_loss_grad(w, X, y),
                 _grad_mistakes(w, X, y))
        cases.append((w, X, y, got))
    w, X, y = _inputs(rng, (3,))
    big = BIG * w / np.linalg.norm(w, axis=-1, keepdims=True)
    got, warned = _call(my_logistic_loss_grad, big, X, y)
    _check_extreme("the gradient", got, warned, logistic_loss_grad(big, X, y), _grad_mistakes(big, X, y))

    loss, which = my_logistic_loss, "your my_logistic_loss"
    if loss is not None:
        try:
            loss(*cases[0][:3])
        except NotImplementedError:
            loss = None
    if loss is None:
        loss, which = logistic_loss, "nf.logistic_loss (yours is not given or not attempted yet)"
    w, X, y, got = cases[1]  # a batch: check each task on its own
    for b in range(X.shape[0]):
        def f(v, b=b):
            try:
                return float(np.asarray(loss(v, X[b], y[b]), dtype=float))
            except Exception as exc:
                raise AssertionError(f"calling {which} on one task for the finite differences raised "
                                     f"{type(exc).__name__} ({exc}): run its checker first") from exc
        num, ana = check_directions(f, w[b], got[b], rng, directions=3)
        try:
            assert_gradients_close(num, ana, f"task {b}")
        except AssertionError as exc:
            raise AssertionError(f"your gradient matches the package's but not the central differences of {which} "
                                 f"({exc}): the loss is the suspect, run check_logistic_loss") from None
    return f"3 layouts, margins of order +-1e4, and central differences of {which.split(' (')[0]}"
