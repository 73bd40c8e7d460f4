"""Chapter 04 checkers: True on the reference, each named mistake rejected with its name, False on a stub."""

import numpy as np
import pytest

import ngdformer as nf
from ngdformer.exercises import ch04
from checker_contract import assert_checker_contract

# ---------------------------------------------------------------------------
# Exercise 1: the embedding.
# ---------------------------------------------------------------------------


def _embed_loop(X, y, w0):
    """An independent embedding: one column at a time, tokens as columns."""
    X, y, w0 = np.asarray(X, float), np.asarray(y, float), np.asarray(w0, float)
    n, d = X.shape[-2:]
    Z = np.zeros(X.shape[:-2] + (2 * d, n + 1))
    for i in range(n):
        Z[..., :d, i] = y[..., i, None] * X[..., i, :]
    Z[..., d:, n] = w0
    return Z


def _embed_in_place(X, y, w0):
    X *= y[..., None]  # mutates the caller's X
    return _embed_loop(X, np.ones_like(y), w0)


def _embed_batched_only(X, y, w0):
    B, n, d = X.shape  # a single task (n, d) raises ValueError here
    return _embed_loop(X, y, w0)


EMBED_MISTAKES = {
    r"tokens are columns: expected shape": lambda X, y, w0: np.swapaxes(nf.embed(X, y, w0), -1, -2),
    r"forgot y": lambda X, y, w0: nf.embed(X, np.ones_like(y), w0),
    r"labels' sign is flipped": lambda X, y, w0: nf.embed(X, -y, w0),
    r"halves are swapped": lambda X, y, w0: ch04.embed_top_query(X, y, w0),
    r"query column comes first": lambda X, y, w0: np.roll(nf.embed(X, y, w0), 1, axis=-1),
    r"iterate w0 is missing": lambda X, y, w0: nf.embed(X, y),
    r"changed its input X in place \(mutating the input\)": _embed_in_place,
    r"raised ValueError: .*called with \(4, 3\)": _embed_batched_only,
}


def test_embed_checker():
    assert_checker_contract(ch04.check_embed, nf.embed, mistakes=EMBED_MISTAKES)


def test_embed_checker_accepts_an_independent_answer():
    assert ch04.check_embed(_embed_loop) is True


# ---------------------------------------------------------------------------
# Exercise 2: the top-query construction.
# ---------------------------------------------------------------------------


def _blocks(d, **blocks):
    """(W, V) from named d x d blocks, e.g. W21=-I, V12=eta I; every other block zero."""
    W, V = np.zeros((2 * d, 2 * d)), np.zeros((2 * d, 2 * d))
    for name, value in blocks.items():
        M = W if name[0] == "W" else V
        r, c = int(name[1]) - 1, int(name[2]) - 1
        M[r * d:(r + 1) * d, c * d:(c + 1) * d] = value
    return W, V


def _top_query(d, eta):
    """An independent answer: the two blocks written out."""
    return _blocks(d, W21=-np.eye(d), V12=eta * np.eye(d))


TOP_QUERY_MISTAKES = {
    r"block W12 of the original embedding": lambda d, eta: nf.ngd_weights(d, eta),
    r"W12 of the original embedding": lambda d, eta: _blocks(d, W12=-np.eye(d), V12=eta * np.eye(d)),
    r"sign is flipped.*best-classified examples": lambda d, eta: _blocks(d, W21=np.eye(d), V12=eta * np.eye(d)),
    r"scaled by eta: eta belongs in V": lambda d, eta: _blocks(d, W21=-eta * np.eye(d), V12=eta * np.eye(d)),
    r"V21 of the original embedding": lambda d, eta: _blocks(d, W21=-np.eye(d), V21=eta * np.eye(d)),
    r"eta is missing from V": lambda d, eta: _blocks(d, W21=-np.eye(d), V12=np.eye(d)),
    r"eta is applied twice": lambda d, eta: _blocks(d, W21=-np.eye(d), V12=eta ** 2 * np.eye(d)),
    r"V has the wrong sign.*increases the loss": lambda d, eta: _blocks(d, W21=-np.eye(d), V12=-eta * np.eye(d)),
    r"V writes into the wrong half": lambda d, eta: _blocks(d, W21=-np.eye(d), V22=eta * np.eye(d)),
    r"V writes into both halves": lambda d, eta: _blocks(d, W21=-np.eye(d), V12=eta * np.eye(d),
                                                          V22=eta * np.eye(d)),
    r"three layers.*reads the half of the context columns that the layer writes":
        lambda d, eta: _blocks(d, W21=-np.eye(d), V12=eta * np.eye(d), V11=eta * np.eye(d)),
    r"return the pair \(W, V\)": lambda d, eta: _top_query(d, eta)[0],
    r"W has shape \(2, 2\), expected \(2d, 2d\) = \(4, 4\)": lambda d, eta: (-np.eye(d), eta * np.eye(d)),
}


def test_top_query_checker():
    assert_checker_contract(ch04.check_top_query_weights, ch04.top_query_weights, mistakes=TOP_QUERY_MISTAKES)


def test_top_query_answer_key():
    """The answer key is the construction with both halves swapped, and passes its checker."""
    d, eta = 3, 0.7
    P = np.block([[np.zeros((d, d)), np.eye(d)], [np.eye(d), np.zeros((d, d))]])
    W, V = ch04.top_query_weights(d, eta)
    Ws, Vs = nf.ngd_weights(d, eta)
    assert np.array_equal(W, P @ Ws @ P) and np.array_equal(V, P @ Vs @ P)
    assert ch04.check_top_query_weights(_top_query) is True


def test_embed_top_query_is_the_swapped_embedding():
    X, y, w = ch04._inputs(np.random.default_rng(0), 4, 6, 3)
    Z = nf.embed(X, y, w)
    assert np.array_equal(ch04.embed_top_query(X, y, w), np.concatenate([Z[..., 3:, :], Z[..., :3, :]], axis=-2))


# ---------------------------------------------------------------------------
# Exercise 3: the sink weights.
# ---------------------------------------------------------------------------


def _sink_loop(m):
    """An independent answer: a stable softmax over [0, -m] one task at a time, the sink dropped."""
    m = np.asarray(m, dtype=float)
    flat = m.reshape(-1, m.shape[-1])
    out = np.empty_like(flat)
    for k, row in enumerate(flat):
        a = np.concatenate([[0.0], -row])
        e = np.exp(a - a.max())
        out[k] = e[1:] / e.sum()
    return out.reshape(m.shape)


def _sink_wrong_axis(m):
    a = np.concatenate([np.zeros(m.shape[:-1] + (1,)), -m], axis=-1)
    e = np.exp(a - a.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True))[..., 1:]


def _sink_unshifted_one(m):
    e = np.exp(-m - np.max(-m, axis=-1, keepdims=True))
    return e / (1.0 + e.sum(axis=-1, keepdims=True))


def _sink_naive(m):
    e = np.exp(-m)  # right formula, overflows at m = -1000
    return e / (1.0 + e.sum(axis=-1, keepdims=True))


def _sink_with_own_weight(m):
    a = np.concatenate([np.zeros(m.shape[:-1] + (1,)), -m], axis=-1)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


SINK_MISTAKES = {
    r"sum to 1: the sink is missing": lambda m: nf.softmax(-m, axis=-1),
    r"margins' sign is flipped": lambda m: _sink_loop(-m),
    r"wrong axis": _sink_wrong_axis,
    r"sink's term 1 = e\^0 was not shifted": _sink_unshifted_one,
    r"overflow at m = -1000": _sink_naive,
    r"return the n context weights only": _sink_with_own_weight,
}


def _sink_package(m):
    """The package's sink weights for margins m: the iterate w = m against X = I, y = 1."""
    n = np.shape(m)[-1]
    return nf.sink_weights(m, np.eye(n), np.ones(n))


def test_sink_checker():
    assert_checker_contract(ch04.check_sink_weights, _sink_package, mistakes=SINK_MISTAKES)


def test_sink_checker_accepts_an_independent_answer():
    assert ch04.check_sink_weights(_sink_loop) is True


# The reference solutions: tests/test_solved_chapters.py puts them in place of the chapter's stubs.
SOLUTIONS = {
    'my_embed': 'import numpy as np\nimport ngdformer as nf\ndef my_embed(X, y, w0):\n    return nf.embed(X, y, w0)\n',
    'my_top_query_weights': 'import numpy as np\nfrom ngdformer.exercises import ch04\n'
                            'def my_top_query_weights(d, eta):\n    return ch04.top_query_weights(d, eta)\n',
    'my_sink_weights': 'import numpy as np\nimport ngdformer as nf\ndef my_sink_weights(m):\n'
                       '    n = np.shape(m)[-1]\n    return nf.sink_weights(m, np.eye(n), np.ones(n))\n',
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_reference_solutions_pass_their_checkers(name):
    namespace = {}
    exec(SOLUTIONS[name], namespace)
    check = getattr(ch04, "check_" + name[3:])
    assert check(namespace[name]) is True
