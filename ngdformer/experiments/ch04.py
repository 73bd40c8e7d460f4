r"""Chapter 04's experiments: the constructed layer against NGD, the attention-sink variant, the context columns.

Each function draws its tasks from the generator it is given, runs one experiment of
chapter 04 and returns its numbers; the chapter prints them and asserts its claims, and
``tests/test_experiments_ch04.py`` checks the same claims on many seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..attention import attention_forward
from ..construction import context_is_inert, looped_forward, ngd_weights
from ..fast import looped_trajectory
from ..gradcheck import check_directions, gradient_errors, rel_error
from ..losses import ngd_coefficients
from ..solvers import ngd, ngd_step
from ..tasks import embed, read_weights, sample_tasks
from ..variants import sink_loss, sink_loss_grad, sink_step, sink_weights


class OneStep(NamedTuple):
    """What :func:`one_step_identity` returns."""

    err_p: float  #: rel_error of the query column's attention weights against p(w)
    err_w: float  #: rel_error of the layer's new iterate against one NGD step


def one_step_identity(rng: np.random.Generator, *, batch: int = 8, n: int = 40, d: int = 10,
                      eta: float = 0.5) -> OneStep:
    r"""One constructed layer against one NGD step, from a random iterate.

    .. math:: A_{:, N} \;\text{vs}\; p(w) = \mathrm{softmax}(-m(w)), \qquad
              \mathrm{read}\big(f(Z)\big) \;\text{vs}\; w + \eta \textstyle\sum_i p_i(w)\, y_i x_i

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the iterates :math:`w \sim N(0, I_d)`.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size of the construction and of NGD.

    Returns
    -------
    OneStep(err_p, err_w) : two floats, :func:`ngdformer.rel_error` over the whole batch
        (attention weights of shape (B, n); iterates of shape (B, d)).
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w = rng.standard_normal((batch, d))
    W, V = ngd_weights(d, eta)
    out, cache = attention_forward(embed(X, y, w), W, V, n)
    err_p = rel_error(cache.A[..., -1], ngd_coefficients(w, X, y))  # A: (B, n, N), the query's column
    err_w = rel_error(read_weights(out), ngd_step(w, X, y, eta))
    return OneStep(err_p, err_w)


def identity_sweep(rng: np.random.Generator, *, ns=(1, 5, 40), ds=(1, 3, 10), etas=(0.01, 0.5, 5.0),
                   scales=(0.0, 1.0, 1e3), tasks: int = 16) -> np.ndarray:
    r"""The one-layer identity over a grid of context sizes, dimensions, step sizes and iterate scales.

    For every :math:`(n, d)` the function draws ``tasks`` tasks and unit directions
    :math:`u`; for every :math:`\eta` and scale :math:`s` it compares the constructed
    layer's new iterate from :math:`w = s u` with ``ngd_step(w, X, y, eta)``.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks and the directions.
    ns, ds, etas, scales : sequences of context sizes, dimensions, step sizes > 0 and scales >= 0.
    tasks : int, tasks B per (n, d).

    Returns
    -------
    err : ndarray of shape (len(ns), len(ds), len(etas), len(scales)), the
        :func:`ngdformer.rel_error` of each setting, over its ``tasks`` tasks.
    """
    err = np.zeros((len(ns), len(ds), len(etas), len(scales)))
    for a, n in enumerate(ns):
        for b, d in enumerate(ds):
            X, y, _ = sample_tasks(rng, tasks, n, d)
            u = rng.standard_normal((tasks, d))
            u /= np.linalg.norm(u, axis=-1, keepdims=True)  # (tasks, d) unit directions
            for c, eta in enumerate(etas):
                W, V = ngd_weights(d, eta)
                for k, scale in enumerate(scales):
                    w = scale * u
                    layer = read_weights(attention_forward(embed(X, y, w), W, V, n)[0])
                    err[a, b, c, k] = rel_error(layer, ngd_step(w, X, y, eta))
    return err


class SinkStep(NamedTuple):
    """What :func:`sink_identity` returns."""

    err_sink: float  #: rel_error of the self-attending layer's iterate against one GD step on the sink loss
    err_shrink: float  #: rel_error of its step against (1 - sink share) times the NGD step
    share: np.ndarray  #: (B,) the weight the query puts on itself, 1 / (1 + sum_j exp(-m_j))
    gap: float  #: rel_error of the self-attending layer's step against the NGD step
    grad_ratio: float  #: largest gradient-check error of sink_loss_grad relative to its tolerance (passes if <= 1)


def sink_identity(rng: np.random.Generator, *, batch: int = 8, n: int = 40, d: int = 10, eta: float = 0.5,
                  directions: int = 5) -> SinkStep:
    r"""The self-attending constructed layer (``attend_self=True``) against GD on the sink loss and against NGD.

    .. math:: w + \eta \sum_i \tilde p_i(w)\, y_i x_i = w - \eta \nabla\mathcal L_{\text{sink}}(w), \qquad
              \tilde p_i = (1 - s)\, p_i, \quad s = \frac{1}{1 + \sum_j e^{-m_j(w)}}

    From random iterates :math:`w \sim N(0, I_d)`; the gradient check of
    :func:`ngdformer.sink_loss_grad` runs the package's checker on the sum of the tasks' losses.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, the iterates and the check's directions.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size.
    directions : int, random directions of the gradient check.

    Returns
    -------
    SinkStep(err_sink, err_shrink, share, gap, grad_ratio) : floats, and ``share`` of shape (B,).
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w = rng.standard_normal((batch, d))
    W, V = ngd_weights(d, eta)
    w_sink = read_weights(attention_forward(embed(X, y, w), W, V, n, attend_self=True)[0])
    share = 1.0 - sink_weights(w, X, y).sum(axis=-1)  # (B,)
    step_sink, step_ngd = w_sink - w, ngd_step(w, X, y, eta) - w  # (B, d) each
    num, ana = check_directions(lambda v: float(np.sum(sink_loss(v, X, y))), w, sink_loss_grad(w, X, y), rng,
                                directions=directions)
    return SinkStep(err_sink=rel_error(w_sink, sink_step(w, X, y, eta)),
                    err_shrink=rel_error(step_sink, (1.0 - share)[:, None] * step_ngd),
                    share=share, gap=rel_error(step_sink, step_ngd),
                    grad_ratio=float(np.max(gradient_errors(num, ana))))


class SinkDepth(NamedTuple):
    """What :func:`sink_over_depth` returns; arrays of shape (depth + 1, B), row L after L applications."""

    norm_masked: np.ndarray  #: ||w_L|| of the masked construction (NGD)
    norm_sink: np.ndarray  #: ||w_L|| of the self-attending layer (GD on the sink loss)
    share: np.ndarray  #: the weight the self-attending query puts on itself


def sink_over_depth(rng: np.random.Generator, *, batch: int = 32, n: int = 40, d: int = 10, eta: float = 1.0,
                    depth: int = 200) -> SinkDepth:
    r"""Loop the constructed layer from :math:`w_0 = 0`, masked (NGD) and self-attending (GD on the sink loss).

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size of the construction.
    depth : int >= 1, the number of applications L.

    Returns
    -------
    SinkDepth(norm_masked, norm_sink, share) : ndarrays of shape (depth + 1, B).
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    W, V = ngd_weights(d, eta)
    Z0 = embed(X, y)  # w0 = 0
    w_masked = looped_trajectory(Z0, W, V, n, depth)  # (depth + 1, B, d)
    w_sink = looped_trajectory(Z0, W, V, n, depth, attend_self=True)
    share = 1.0 - sink_weights(w_sink, X, y).sum(axis=-1)  # (depth + 1, B)
    return SinkDepth(np.linalg.norm(w_masked, axis=-1), np.linalg.norm(w_sink, axis=-1), share)


def growth_ratio(norms) -> np.ndarray:
    r"""How much a curve grows over its second half relative to its first half.

    .. math:: \frac{a_L - a_{L/2}}{a_{L/2} - a_0}

    About 1 for linear growth, well below 1 for growth like :math:`\log L`.

    Parameters
    ----------
    norms : ndarray of shape (L + 1, ...), a curve over depth (L even).

    Returns
    -------
    ratio : ndarray of shape (...)
    """
    norms = np.asarray(norms, dtype=float)
    half = (norms.shape[0] - 1) // 2
    return (norms[-1] - norms[half]) / (norms[half] - norms[0])


class ContextColumns(NamedTuple):
    """What :func:`context_columns` returns."""

    top_change: float  #: max |change| of the context columns' top halves after `depth` layers
    err_bottom_1: float  #: rel_error of their bottom halves after one layer against eta * mean(y x)
    err_bottom_L: float  #: rel_error of their bottom halves after `depth` layers against NGD from 0
    query_change: float  #: rel_error of the query column, context bottoms scrambled vs clean, after `depth` layers
    inert: bool  #: context_is_inert(W*, V*)


def context_columns(rng: np.random.Generator, *, batch: int = 8, n: int = 40, d: int = 10, eta: float = 0.5,
                    depth: int = 5, scramble: float = 1e3) -> ContextColumns:
    r"""What the constructed layer does to the context columns, and that the query never reads them.

    Every column is a query, so the context column :math:`[y_j x_j; b_j]` becomes
    :math:`[y_j x_j;\ b_j + \eta \sum_i \mathrm{softmax}(-m(b_j))_i\, y_i x_i]`: its bottom half
    runs NGD from :math:`b_j = 0`. The query column starts from a random iterate :math:`w_0`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, the query's start and the scrambled bottoms.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size.
    depth : int >= 1, the number of applications L of the full layer (every column a query).
    scramble : float, scale of the random values written into the context bottoms.

    Returns
    -------
    ContextColumns(top_change, err_bottom_1, err_bottom_L, query_change, inert)
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = rng.standard_normal((batch, d))
    W, V = ngd_weights(d, eta)
    Z0 = embed(X, y, w0)  # (B, 2d, n + 1)
    Z1 = attention_forward(Z0, W, V, n)[0]
    ZL = looped_forward(Z0, W, V, n, depth)  # the full layer: every column is a query
    mean_yx = np.mean(y[..., None] * X, axis=1)  # (B, d)
    b_L = ngd(np.zeros((batch, d)), X, y, eta, depth)[-1]  # (B, d) NGD from 0
    scrambled = Z0.copy()
    scrambled[:, d:, :n] = scramble * rng.standard_normal((batch, d, n))
    q_clean, q_scrambled = ZL[..., -1], looped_forward(scrambled, W, V, n, depth)[..., -1]
    return ContextColumns(
        top_change=float(np.max(np.abs(ZL[:, :d, :n] - Z0[:, :d, :n]))),
        err_bottom_1=rel_error(Z1[:, d:, :n], np.repeat(eta * mean_yx[:, :, None], n, axis=2)),
        err_bottom_L=rel_error(ZL[:, d:, :n], np.repeat(b_L[:, :, None], n, axis=2)),
        query_change=rel_error(q_scrambled, q_clean),
        inert=context_is_inert(W, V),
    )


class ExtraBlock(NamedTuple):
    """What :func:`w22_effect` returns: rel_error of the query column with W* + W22 against W*."""

    one_layer: float  #: after one layer, clean context bottoms (zero)
    looped: float  #: after `depth` layers, clean context bottoms (they change, but stay equal to each other)
    looped_scrambled: float  #: after `depth` layers from scrambled context bottoms


def w22_effect(rng: np.random.Generator, *, batch: int = 8, n: int = 40, d: int = 10, eta: float = 0.5,
               depth: int = 10, scramble: float = 1.0) -> ExtraBlock:
    r"""Add a random block :math:`W_{22} = M` to :math:`W^*` and compare the query column with that of :math:`W^*`.

    Parameters
    ----------
    rng : np.random.Generator, draws the tasks, the query's start, M (entries N(0, 1/d)) and the scrambled bottoms.
    batch, n, d : int, tasks B, context size and input dimension.
    eta : float > 0, the step size.
    depth : int >= 1, the number of applications L of the full layer.
    scramble : float, scale of the random context bottoms of the third comparison.

    Returns
    -------
    ExtraBlock(one_layer, looped, looped_scrambled) : floats, :func:`ngdformer.rel_error` of the query columns (B, 2d).
    """
    X, y, _ = sample_tasks(rng, batch, n, d)
    w0 = rng.standard_normal((batch, d))
    W, V = ngd_weights(d, eta)
    W_plus = W.copy()
    W_plus[d:, d:] = rng.standard_normal((d, d)) / np.sqrt(d)
    Z0 = embed(X, y, w0)
    scrambled = Z0.copy()
    scrambled[:, d:, :n] = scramble * rng.standard_normal((batch, d, n))

    def gap(Z, L):
        return rel_error(looped_forward(Z, W_plus, V, n, L)[..., -1], looped_forward(Z, W, V, n, L)[..., -1])

    return ExtraBlock(gap(Z0, 1), gap(Z0, depth), gap(scrambled, depth))
