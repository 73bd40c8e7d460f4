"""The experiments chapter 03 (softmax attention by hand) asserts, as functions of a seed.

Each function draws its inputs from ``np.random.default_rng(seed)``, so the chapter and
``tests/test_experiments_ch03.py`` run the same experiment, the chapter on its seed and
the tests on many. Nothing here prints.
"""

from __future__ import annotations

import time

import numpy as np

from ..attention import attention_backward, attention_forward, attention_naive, softmax, softmax_backward
from ..gradcheck import gradient_errors, numeric_jacobian, rel_error


def tiny_problem(seed: int, d: int = 2, n: int = 3):
    """One task small enough for full finite-difference Jacobians: tokens, weights, upstream gradient.

    Parameters
    ----------
    seed : int, seeds ``np.random.default_rng``.
    d : int, input dimension (D = 2d rows).
    n : int, context size (N = n + 1 columns).

    Returns
    -------
    Z : ndarray of shape (D, N), tokens as columns, standard normal entries.
    W, V : ndarray of shape (D, D), standard normal entries.
    G : ndarray of shape (D, N), the upstream gradient dJ/dout of the objective J = sum(G * out).
    """
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n + 1
    Z = rng.standard_normal((D, N))
    W, V = rng.standard_normal((D, D)), rng.standard_normal((D, D))
    G = rng.standard_normal((D, N))
    return Z, W, V, G


def softmax_jacobian_errors(seed: int, d: int = 2, n: int = 3) -> dict:
    r"""The softmax Jacobian :math:`\partial a/\partial s = \mathrm{diag}(a) - aa^\top` of one score column, checked.

    The column is the first query's scores :math:`s = S_{:, 0}` of :func:`tiny_problem`; the
    vector-Jacobian product is tested on a random ``da`` from a second stream,
    ``np.random.default_rng([seed, 1])``.

    Parameters
    ----------
    seed : int, as in :func:`tiny_problem`.
    d, n : int, the sizes of :func:`tiny_problem`.

    Returns
    -------
    errors : dict with float entries
        ``jacobian``: max |numeric - analytic| over the (n, n) Jacobian (central differences, h = 1e-6);
        ``row_sums``: max |row sum| of the analytic Jacobian;
        ``vjp``: max |softmax_backward(da, a) - (dA/dS)^T da|, in units of max |da| (an absolute
        measure: when a is nearly one-hot, ds is tiny and a relative error would measure cancellation);
        ``ds_sum``: |sum of the entries of ds|, in units of max |da|.
    """
    Z, W, _, _ = tiny_problem(seed, d, n)
    s = Z[:, :n].T @ W @ Z[:, 0]  # (n,) scores of query 0
    a = softmax(s, axis=0)
    dA_dS = np.diag(a) - np.outer(a, a)  # (n, n), symmetric
    numeric = numeric_jacobian(lambda v: softmax(v, axis=0), s)
    da = np.random.default_rng([seed, 1]).standard_normal(n)
    ds = softmax_backward(da, a, axis=0)
    return {"jacobian": float(np.abs(numeric - dA_dS).max()),
            "row_sums": float(np.abs(dA_dS.sum(axis=1)).max()),
            "vjp": float(np.abs(ds - dA_dS.T @ da).max() / np.abs(da).max()),
            "ds_sum": float(abs(ds.sum()) / np.abs(da).max())}


def layer_gradient_errors(seed: int, d: int = 2, n: int = 3, h: float = 1e-6) -> dict:
    r"""``nf.attention_backward`` against full central-difference gradients of :math:`J = \sum G \odot \mathrm{out}`.

    Parameters
    ----------
    seed : int, as in :func:`tiny_problem`.
    d, n : int, the sizes of :func:`tiny_problem`.
    h : float, the central-difference step (the package's default is 1e-6).

    Returns
    -------
    errors : dict name -> (max_abs, worst_ratio) for ``"dZ"``, ``"dW"``, ``"dV"``
        max_abs: max |numeric - analytic| over the entries; worst_ratio: the largest
        :func:`~ngdformer.gradcheck.gradient_errors` value (the check passes when it is <= 1).
    """
    Z, W, V, G = tiny_problem(seed, d, n)
    _, cache = attention_forward(Z, W, V, n)
    grads = dict(zip(("dZ", "dW", "dV"), attention_backward(G, cache)))
    objectives = {"dZ": (lambda Z_: np.sum(G * attention_forward(Z_, W, V, n)[0]), Z),
                  "dW": (lambda W_: np.sum(G * attention_forward(Z, W_, V, n)[0]), W),
                  "dV": (lambda V_: np.sum(G * attention_forward(Z, W, V_, n)[0]), V)}
    errors = {}
    for name, (f, x) in objectives.items():
        num = numeric_jacobian(f, x, h=h)  # scalar f: its gradient, the shape of x
        errors[name] = (float(np.abs(num - grads[name]).max()), float(gradient_errors(num, grads[name]).max()))
    return errors


def batch_sum_error(seed: int, B: int = 5, d: int = 3, n: int = 6) -> dict:
    """A batched ``attention_backward`` against a loop of single-task calls.

    The weights are shared by the B tasks, so dW and dV of the batch must equal the sums of
    the per-task gradients, and dZ the stacked per-task dZ.

    Parameters
    ----------
    seed : int, seeds the draw of Z (B, 2d, n + 1), W, V (2d, 2d) and dout (B, 2d, n + 1).
    B, d, n : int, the sizes.

    Returns
    -------
    errors : dict name -> float, the relative errors (``nf.rel_error``) for ``"dZ"``, ``"dW"``, ``"dV"``.
    """
    rng = np.random.default_rng(seed)
    D, N = 2 * d, n + 1
    Z, dout = rng.standard_normal((2, B, D, N))
    W, V = rng.standard_normal((2, D, D)) / np.sqrt(D)
    batched = attention_backward(dout, attention_forward(Z, W, V, n)[1])
    single = [attention_backward(dout[b], attention_forward(Z[b], W, V, n)[1]) for b in range(B)]
    looped = (np.stack([g[0] for g in single]), sum(g[1] for g in single), sum(g[2] for g in single))
    return {name: rel_error(a, b) for name, a, b in zip(("dZ", "dW", "dV"), batched, looped)}


def score_scale_sweep(seed: int, scales=(0.0, 1.0), d: int = 2, n: int = 3) -> dict:
    r"""How the attention weights and dW change when the score weights are scaled, :math:`W \to cW`.

    At c = 0 every score is 0 and every query attends uniformly (A = 1/n); as c grows each
    column of A tends to a one-hot vector and the gradient through the softmax vanishes.

    Parameters
    ----------
    seed : int, as in :func:`tiny_problem`.
    scales : sequence of float >= 0, the factors c.
    d, n : int, the sizes of :func:`tiny_problem`.

    Returns
    -------
    sweep : dict of ndarrays of shape (len(scales),)
        ``max_A``: the largest attention weight; ``uniform_gap``: max |A - 1/n|;
        ``dW``: the Frobenius norm of dW at weights (cW, V) for J = sum(G * out);
        ``dV``: the Frobenius norm of dV (for comparison: it does not pass through the softmax's gradient).
    """
    Z, W, V, G = tiny_problem(seed, d, n)
    rows = []
    for c in scales:
        _, cache = attention_forward(Z, c * W, V, n)
        _, dW, dV = attention_backward(G, cache)
        rows.append((cache.A.max(), np.abs(cache.A - 1.0 / n).max(), np.linalg.norm(dW), np.linalg.norm(dV)))
    cols = np.array(rows, dtype=float).T  # (4, len(scales))
    return dict(zip(("max_A", "uniform_gap", "dW", "dV"), cols))


def identical_keys_dW(seed: int, d: int = 2, n: int = 3) -> float:
    """The norm of dW at W = 0 when every key is the same column: the centred values vanish.

    Parameters
    ----------
    seed : int, as in :func:`tiny_problem`; the first column of Z is copied to every key.
    d, n : int, the sizes of :func:`tiny_problem`.

    Returns
    -------
    norm : float, the Frobenius norm of dW, relative to the norm of dV.
    """
    Z, _, V, G = tiny_problem(seed, d, n)
    Z = Z.copy()
    Z[:, :n] = Z[:, :1]  # every key (and value) is the same token
    _, cache = attention_forward(Z, np.zeros_like(V), V, n)
    _, dW, dV = attention_backward(G, cache)
    return float(np.linalg.norm(dW) / np.linalg.norm(dV))


def naive_vs_vectorised(seed: int, B: int = 8, n: int = 20, d: int = 5) -> float:
    """Relative difference of ``attention_naive`` and ``attention_forward`` on one batch.

    Parameters
    ----------
    seed : int, seeds the draw of Z (B, 2d, n + 1) and W, V (2d, 2d) (scaled by 1/sqrt(2d)).
    B, n, d : int, the sizes.

    Returns
    -------
    err : float, ``nf.rel_error`` of the two outputs.
    """
    Z, W, V = random_batch(seed, B, n, d)
    return rel_error(attention_naive(Z, W, V, n), attention_forward(Z, W, V, n)[0])


def random_batch(seed: int, B: int, n: int, d: int):
    """Tokens Z (B, 2d, n + 1) and weights W, V (2d, 2d), standard normal, the weights scaled by 1/sqrt(2d).

    Parameters
    ----------
    seed : int, seeds ``np.random.default_rng``.
    B, n, d : int, batch, context size, input dimension.

    Returns
    -------
    Z : ndarray of shape (B, 2d, n + 1)
    W, V : ndarray of shape (2d, 2d)
    """
    rng = np.random.default_rng(seed)
    D = 2 * d
    Z = rng.standard_normal((B, D, n + 1))
    W, V = rng.standard_normal((2, D, D)) / np.sqrt(D)
    return Z, W, V


def best_time(fn, repeats: int = 5) -> float:
    """The shortest of ``repeats`` wall-clock times of ``fn()`` (``time.perf_counter``), in seconds.

    Parameters
    ----------
    fn : callable without arguments.
    repeats : int >= 1.

    Returns
    -------
    seconds : float
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def layer_timings(seed: int, ns=(4, 8, 16, 32, 64), B: int = 4, d: int = 4, repeats: int = 3):
    """Best-of-``repeats`` times of one forward call, per-token loop against the vectorised layer.

    Parameters
    ----------
    seed : int, seeds the draws of Z, W, V as in :func:`naive_vs_vectorised`.
    ns : sequence of int, the context sizes n.
    B, d : int, batch and input dimension (D = 2d).
    repeats : int, the timing repeats (the minimum is kept).

    Returns
    -------
    t_naive, t_vec : ndarray of shape (len(ns),), seconds per call of ``attention_naive`` and
        ``attention_forward``.
    """
    t_naive, t_vec = [], []
    for n in ns:
        Z, W, V = random_batch(seed, B, n, d)
        t_naive.append(best_time(lambda: attention_naive(Z, W, V, n), repeats))
        t_vec.append(best_time(lambda: attention_forward(Z, W, V, n), repeats))
    return np.array(t_naive), np.array(t_vec)
