r"""Checkers for chapter 04, the one-layer construction (see ``ngdformer.exercises`` for the protocol).

Exercise 2 uses an embedding the chapter does not: the iterate in the **top** half of the
query column and the context in the **bottom** halves of the context columns,

.. math:: Z' = \begin{bmatrix} 0 & \cdots & 0 & w \\ y_1 x_1 & \cdots & y_n x_n & 0 \end{bmatrix}
          \in \mathbb R^{2d \times (n + 1)}.

:func:`embed_top_query` builds it; :func:`top_query_weights` is the answer key of that
exercise (read it after attempting; compare it with :func:`ngdformer.ngd_weights`).
"""

from __future__ import annotations

import numpy as np

from ..attention import attention_forward
from ..checks import check_context, check_positive
from ..construction import looped_forward
from ..losses import ngd_coefficients
from ..solvers import ngd
from ..tasks import embed, sample_tasks
from ..variants import sink_weights
from . import NotAttempted, attempt, checker, compare


def _call(fn, *args):
    """:func:`attempt`, and an exception of the student's function becomes an AssertionError saying where."""
    try:
        return attempt(fn, *args)
    except (NotAttempted, AssertionError):
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the student's code is reported with the inputs' shapes
        shapes = ", ".join(str(np.shape(a)) if np.ndim(a) else repr(a) for a in args)
        raise AssertionError(f"your function raised {type(exc).__name__}: {exc} (called with {shapes})") from exc


def _inputs(rng, batch, n: int, d: int):
    """A random context X (.., n, d), labels y (.., n) and iterate w (.., d); batch None means a single task."""
    X, y, _ = sample_tasks(rng, 1 if batch is None else batch, n, d)
    w = rng.standard_normal((X.shape[0], d))
    return (X[0], y[0], w[0]) if batch is None else (X, y, w)


# ---------------------------------------------------------------------------
# Exercise 1: the embedding.
# ---------------------------------------------------------------------------

# (B, n, d), B = None for one task; B, n, d, D = 2d and N = n + 1 all differ, so a transposed layout cannot pass
_EMBED_SHAPES = ((3, 5, 2), (None, 4, 3), (2, 6, 4))


def _tokens_as_rows(got, expected) -> None:
    """AssertionError if ``got`` has the transposed layout (tokens as rows)."""
    rows = expected.shape[:-2] + expected.shape[:-3:-1]
    if np.shape(got) == rows:
        raise AssertionError(f"tokens are columns: expected shape {expected.shape} (2d rows, n + 1 columns), "
                             f"got {np.shape(got)}, the tokens as rows")


@checker("embed")
def check_embed(my_embed) -> None:
    r"""``my_embed(X, y, w0)`` -> Z: X (B, n, d), y (B, n), w0 (B, d) -> (B, 2d, n + 1); one task: (2d, n + 1).

    Compared with :func:`ngdformer.embed` on three shapes, batched and single; recognises the
    tokens as rows, a forgotten or flipped y, the halves swapped, the query in the first
    column, a missing iterate and an input changed in place.
    """
    rng = np.random.default_rng(40)
    for batch, n, d in _EMBED_SHAPES:
        X, y, w0 = _inputs(rng, batch, n, d)
        before = [a.copy() for a in (X, y, w0)]
        got = _call(my_embed, X, y, w0)
        for name, now, then in zip(("X", "y", "w0"), (X, y, w0), before):
            if not np.array_equal(now, then):
                raise AssertionError(f"your function changed its input {name} in place (mutating the input): "
                                     "build Z in a new array and leave X, y and w0 as they were")
        expected = embed(X, y, w0)  # (.., 2d, n + 1)
        _tokens_as_rows(got, expected)
        swapped = np.concatenate([expected[..., d:, :], expected[..., :d, :]], axis=-2)
        first = np.concatenate([expected[..., -1:], expected[..., :-1]], axis=-1)
        what = "Z" if batch is not None else "Z for a single task"
        compare(what, got, expected, rtol=0, atol=0, alternatives=[
            ("the context columns hold x_i without its label (forgot y?)", embed(X, np.ones_like(y), w0)),
            ("the labels' sign is flipped in the context columns", embed(X, -y, w0)),
            ("the top and bottom halves are swapped (that is the embedding of exercise 2, not this one)", swapped),
            ("the query column comes first: it must be the last column, after the n context columns", first),
            ("the iterate w0 is missing from the query column", embed(X, y, np.zeros_like(w0))),
        ])


# ---------------------------------------------------------------------------
# Exercise 2: the construction for the top-query embedding.
# ---------------------------------------------------------------------------


def embed_top_query(X, y, w) -> np.ndarray:
    r"""The embedding of exercise 2: the iterate in the top half of the query, the context in the bottom halves.

    .. math:: Z' = \begin{bmatrix} 0 & \cdots & 0 & w \\ y_1 x_1 & \cdots & y_n x_n & 0 \end{bmatrix}

    Parameters
    ----------
    X : ndarray of shape (..., n, d), the context inputs x_i.
    y : ndarray of shape (..., n), labels in {-1, +1}.
    w : ndarray of shape (..., d), the iterate.

    Returns
    -------
    Z : ndarray of shape (..., 2d, n + 1), tokens as columns; the last column is the query.

    Examples
    --------
    >>> embed_top_query(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, -1.0]), np.array([5.0, 6.0]))
    array([[ 0.,  0.,  5.],
           [ 0.,  0.,  6.],
           [ 1., -3.,  0.],
           [ 2., -4.,  0.]])
    """
    w, X, y = check_context(w, X, y)
    n, d = X.shape[-2:]
    Z = np.zeros(np.broadcast_shapes(X.shape[:-2], w.shape[:-1]) + (2 * d, n + 1))
    Z[..., d:, :n] = np.swapaxes(y[..., None] * X, -1, -2)  # (..., d, n) columns y_i x_i, bottom half
    Z[..., :d, n] = w  # the iterate, top half of the query
    return Z


def top_query_weights(d: int, eta: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Answer key of exercise 2: the weights that perform one NGD step on :func:`embed_top_query`'s tokens.

    .. math:: W = \begin{bmatrix}0 & 0\\ -I_d & 0\end{bmatrix},\qquad
              V = \begin{bmatrix}0 & \eta I_d\\ 0 & 0\end{bmatrix}

    The query :math:`[w; 0]` meets the key :math:`[0; y_i x_i]` through :math:`W_{21}`:
    the score is :math:`(y_i x_i)^\top(-w) = -m_i(w)`. :math:`V_{12}` takes the key's bottom
    half to the query's top half, where the iterate lives. These are :func:`ngdformer.ngd_weights`
    with both halves swapped, :math:`W = P W^* P`, :math:`V = P V^* P`.

    Parameters
    ----------
    d : int >= 1, input dimension.
    eta : float > 0, the step size.

    Returns
    -------
    W, V : ndarray of shape (2d, 2d)
    """
    check_positive("d", d, integer=True)
    check_positive("eta", eta)
    W, V = np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    W[d:, :d] = -np.eye(d)  # W21: scores -m_i(w)
    V[:d, d:] = eta * np.eye(d)  # V12: eta * sum_i p_i y_i x_i into the top half
    return W, V


# (B, n, d, eta), B = None for one task
_TOP_QUERY_CASES = ((3, 5, 2, 0.5), (None, 4, 3, 1.7), (2, 9, 4, 0.05))


def _weight_pair(got, d: int):
    """The student's (W, V) as two float arrays of shape (2d, 2d), or an AssertionError saying what is off."""
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise AssertionError("return the pair (W, V)")
    pair = []
    for name, M in zip("WV", got):
        try:
            M = np.asarray(M, dtype=float)
        except (TypeError, ValueError):
            raise AssertionError(f"{name}: expected an array of numbers, got {type(M).__name__}") from None
        if M.shape != (2 * d, 2 * d):
            raise AssertionError(f"{name} has shape {M.shape}, expected (2d, 2d) = {(2 * d, 2 * d)}")
        if not np.all(np.isfinite(M)):
            raise AssertionError(f"{name} contains NaN or inf")
        pair.append(M)
    return pair


def _query_column(w, step) -> np.ndarray:
    """The query column [w + step; 0] of shape (..., 2d) for an update ``step`` of the top half."""
    return np.concatenate([w + step, np.zeros_like(w)], axis=-1)


@checker("top-query construction")
def check_top_query_weights(my_top_query_weights) -> None:
    r"""``my_top_query_weights(d, eta)`` -> (W, V), each (2d, 2d): one layer on :func:`embed_top_query` is one NGD step.

    For three shapes (batched and single) the checker runs ``nf.attention_forward`` on
    :func:`embed_top_query` ``(X, y, w)`` with the student's weights, then compares (1) the
    query column's attention weights with :math:`p(w)`, (2) the query column with
    :math:`[w + \eta \sum_i p_i y_i x_i;\ 0]`, (3) three applications of the full layer with
    three NGD steps. It names the blocks of the original embedding, the flipped sign of the
    scores or of V, eta missing, twice or in W, and V writing into the wrong half.
    """
    rng = np.random.default_rng(41)
    for batch, n, d, eta in _TOP_QUERY_CASES:
        W, V = _weight_pair(_call(my_top_query_weights, d, eta), d)
        X, y, w = _inputs(rng, batch, n, d)
        out, cache = attention_forward(embed_top_query(X, y, w), W, V, n)
        p = ngd_coefficients(w, X, y)  # (.., n)
        uniform = np.full_like(p, 1.0 / n)
        compare("the query's attention weights", cache.A[..., -1], p, alternatives=[
            ("the query's scores are all equal: your W pairs a half of the query with a half of the keys that is zero "
             "in this embedding (the block W12 of the original embedding?). Which block meets the query's top half "
             "and the keys' bottom half?", uniform),
            ("the scores are +m_i: the sign is flipped, so the query attends most to the best-classified examples "
             "instead of the worst ones (that is not NGD's weighting)", ngd_coefficients(-w, X, y)),
            ("the scores are scaled by eta: eta belongs in V only", ngd_coefficients(eta * w, X, y)),
        ], hint="the query's score against key i should be -m_i(w)")
        g = np.einsum("...n,...nd->...d", p * y, X)  # (.., d) sum_i p_i y_i x_i
        expected = _query_column(w, eta * g)
        compare("the query column after one layer", out[..., -1], expected, alternatives=[
            ("the query column did not change: V reads a half of the keys that is zero in this embedding "
             "(the block V21 of the original embedding?)", _query_column(w, 0 * g)),
            ("eta is missing from V", _query_column(w, g)),
            ("eta is applied twice", _query_column(w, eta ** 2 * g)),
            ("V has the wrong sign: the step goes against the NGD direction and increases the loss",
             _query_column(w, -eta * g)),
            ("V writes into the wrong half: the update lands in the bottom half of the query column, but this "
             "embedding keeps the iterate in the top half", np.concatenate([w, eta * g], axis=-1)),
            ("V writes into both halves of the query column: only the iterate's half should change",
             np.concatenate([w + eta * g, eta * g], axis=-1)),
        ], hint="the top half should become one NGD step from w and the bottom half stay zero")
        three = looped_forward(embed_top_query(X, y, w), W, V, n, 3)[..., :d, -1]
        compare("three layers", three, ngd(w, X, y, eta, 3)[-1], rtol=1e-7, atol=1e-9,
                hint="one layer is right but three are not three NGD steps: a block of your W or V reads the "
                     "half of the context columns that the layer writes (it starts at zero, so one layer cannot "
                     "see it). Keep every block you do not need zero")


# ---------------------------------------------------------------------------
# Exercise 3: the sink weights.
# ---------------------------------------------------------------------------


def _sink_reference(m) -> np.ndarray:
    """:func:`ngdformer.sink_weights` for margins m (..., n): the iterate w = m against X = I, y = 1."""
    n = m.shape[-1]
    return sink_weights(m, np.eye(n), np.ones(n))


def _softmax_last(a) -> np.ndarray:
    e = np.exp(a - np.max(a, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _with_sink(m, sign: float = -1.0) -> np.ndarray:
    """Logits [0, sign * m] with the sink's 0 first, shape (..., n + 1)."""
    return np.concatenate([np.zeros(m.shape[:-1] + (1,)), sign * m], axis=-1)


@checker("sink weights")
def check_sink_weights(my_sink_weights) -> None:
    r"""``my_sink_weights(m)``: margins m of shape (..., n) -> :math:`\tilde p` of shape (..., n), finite at m = -1000.

    Compared with :func:`ngdformer.sink_weights` on one task and on a batch, then at margins
    of -1000. Recognises the sink left out, the margins' sign, the sink's own weight
    returned, the softmax over the batch axis, an unshifted sink term and an overflow.
    """
    rng = np.random.default_rng(42)
    cases = (np.array([0.5, -1.0, 2.0, 0.0]), rng.standard_normal((3, 5)) * 2.0)
    for m in cases:
        got = _call(my_sink_weights, m.copy())
        expected = _sink_reference(m)
        if np.shape(got) == m.shape[:-1] + (m.shape[-1] + 1,):
            raise AssertionError(f"shape {np.shape(got)}: return the n context weights only, shape {m.shape} "
                                 "(leave out the weight the query puts on itself)")
        shift = np.max(-m, axis=-1, keepdims=True)
        e = np.exp(-m - shift)
        alternatives = [
            ("the weights sum to 1: the sink is missing (the query's own score, 0, also competes for attention)",
             _softmax_last(-m)),
            ("the margins' sign is flipped", _softmax_last(_with_sink(m, +1.0))[..., 1:]),
            ("the sink's term 1 = e^0 was not shifted along with the margins' exponents",
             e / (1.0 + np.sum(e, axis=-1, keepdims=True))),
        ]
        if m.ndim == 2:
            a = _with_sink(m)
            ea = np.exp(a - np.max(a, axis=0, keepdims=True))
            alternatives += [
                ("the softmax runs over the wrong axis: normalise each task's row (the last axis), not the batch",
                 (ea / np.sum(ea, axis=0, keepdims=True))[..., 1:]),
            ]
        compare("sink weights" + (" for a batch of margins (B, n)" if m.ndim == 2 else ""), got, expected,
                alternatives=alternatives)
    big = np.array([-1000.0, -999.0, 5.0])
    with np.errstate(all="ignore"):
        got_big = np.asarray(_call(my_sink_weights, big.copy()), dtype=float)
    if not np.all(np.isfinite(got_big)):
        raise AssertionError("sink weights overflow at m = -1000: shift all n + 1 exponents by their maximum, "
                             "the sink's 0 included")
    compare("sink weights at margins of -1000", got_big, _sink_reference(big))
