r"""The course's recurring figures: weight heatmaps, curves over depth, 2-D decision lines (chapters 04-09).

One colour per quantity (:data:`COLORS`) so that "NGD" is the same blue in every chapter
and lecture. Each function draws on axes it is given (or, for :func:`weight_heatmap`, on a
new figure), returns them, and never calls ``plt.show()``. Matplotlib is imported only
when a function runs, so ``import ngdformer`` stays light and leaves the backend alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .boundaries import separator_segment
from .checks import InputTypeError, as_float, as_labels, check_flag, check_positive

# Okabe & Ito (2008) palette: distinct under the common colour-vision deficiencies.
# Its yellow (#F0E442) is left out: it is unreadable as a thin line on white.
COLORS = {
    "transformer": "#D55E00",  # vermillion: the looped attention model
    "ngd": "#0072B2",  # blue: normalized gradient descent
    "gd": "#E69F00",  # orange: plain gradient descent
    "max_margin": "#000000",  # black: the hard-margin direction w_mm, the reference
    "w_star": "#009E73",  # bluish green: the task's true direction w*
    "construction": "#CC79A7",  # reddish purple: the constructed weights W*, V*
    "trained": "#56B4E9",  # sky blue: weights found by training
}


# For labels that are not quantities of COLORS: colours that none of its entries resembles.
OTHER_COLORS = ("#7F7F7F", "#8C564B", "#9467BD", "#BCBD22", "#17BECF", "#F781BF")


def _color(label: str) -> str | None:
    """``COLORS`` entry for a legend label, or None if the label names no known quantity.

    The key is the label lower-cased, cut before any ``" ("`` or ``","``, with spaces and
    hyphens read as underscores: ``"NGD (eta = 1)"`` -> ``"ngd"``, ``"Max-margin"`` -> ``"max_margin"``.
    """
    key = str(label).lower().split(" (")[0].split(",")[0].strip()
    return COLORS.get(key.replace(" ", "_").replace("-", "_"))


def _colors(labels) -> dict:
    """One colour per label: its ``COLORS`` entry, else the next of :data:`OTHER_COLORS`."""
    others = iter(OTHER_COLORS * (1 + len(labels) // len(OTHER_COLORS)))
    return {label: _color(label) or next(others) for label in labels}


def _legend_outside(ax) -> None:
    """Legend to the right of the axes, top-aligned, so it never covers data.

    It lies outside the axes, so make the figure with ``layout="constrained"`` (or save with
    ``bbox_inches="tight"``) to keep it inside the picture.
    """
    ax.legend(bbox_to_anchor=(1.02, 1.0), loc="upper left", borderaxespad=0.0, frameon=False)


def weight_heatmap(W, V, *, axes=None, titles=("W", "V"), vmax=None, cmap="RdBu_r"):
    r"""Draw layer weights W and V side by side on one symmetric colour scale (chapters 04, 06).

    Thin lines split each matrix into its four d x d blocks, named ``W11 .. W22`` (row
    block first, 1 = top/left half). Top-row names sit above the matrix and bottom-row
    names below it, over their own column of blocks, so no label hides an entry.

    Parameters
    ----------
    W, V : ndarray of shape (2d, 2d), finite.
    axes : pair of Axes, optional. Default: a new figure with two axes.
    titles : pair of str, one title per matrix.
    vmax : float > 0, optional. The colour scale is [-vmax, vmax]; default
        max |entry| over W and V together, or 1.0 if both are zero. 2 vmax must be a finite float.
    cmap : str (a registered colormap name) or Colormap, a diverging map (zero is its middle colour).

    Returns
    -------
    fig : Figure
    axes : tuple of 2 Axes, the ones drawn on.

    Examples
    --------
    >>> fig, axes = weight_heatmap(*ngd_weights(3, 0.5))  # doctest: +SKIP
    """
    W, V, axes, vmax = _check_heatmap(W, V, axes, titles, vmax, cmap)
    d = W.shape[0] // 2
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.8), layout="constrained")
    axes = tuple(axes)
    for ax, M, name, title in zip(axes, (W, V), ("W", "V"), titles):
        im = ax.imshow(M, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.axhline(d - 0.5, color="0.2", lw=0.6)
        ax.axvline(d - 0.5, color="0.2", lw=0.6)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, pad=16)
        _label_blocks(ax, name, d)
    fig = axes[0].figure
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig, axes


def _check_axes(name: str, ax):
    """``ax`` must be a matplotlib Axes (what every drawing call needs)."""
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise InputTypeError(f"{name} must be a matplotlib Axes, got {_short(ax)}")
    return ax


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_text(name: str, value) -> str:
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be a str, got {_short(value)}")
    return value


def _check_labels(name: str, mapping) -> None:
    """A dict of curves or directions: str labels that a legend shows (not starting with "_")."""
    if not isinstance(mapping, Mapping):
        raise InputTypeError(f"{name} must be a dict label -> array, got {_short(mapping)}")
    for label in mapping:
        if not isinstance(label, str) or label.startswith("_"):
            raise ValueError(f"{name} has the label {label!r}: labels must be str not starting with '_' "
                             "(matplotlib hides those from the legend)")


def _check_heatmap(W, V, axes, titles, vmax, cmap):
    """Every argument of :func:`weight_heatmap`; returns ``W, V, axes, vmax`` (vmax filled in)."""
    W, V = _check_square_pair(W, V)
    if axes is not None:
        if isinstance(axes, str) or not hasattr(axes, "__len__") or len(axes) != 2:
            raise ValueError(f"axes must hold 2 Axes, got {_short(axes)}")
        for k, ax in enumerate(axes):
            _check_axes(f"axes[{k}]", ax)
    if isinstance(titles, str) or not hasattr(titles, "__len__") or len(titles) != 2:
        raise ValueError(f"titles must be a pair of str, got {_short(titles)}")
    for k, title in enumerate(titles):
        _check_text(f"titles[{k}]", title)
    if vmax is None:
        vmax = float(max(np.abs(W).max(), np.abs(V).max())) or 1.0  # all-zero weights: any positive scale will do
    check_positive("vmax", vmax)
    if 2.0 * float(vmax) > np.finfo(np.float64).max:  # Python floats: overflow gives inf, no warning
        raise ValueError(f"vmax = {vmax!r} (the largest |entry| of W and V unless given) is too large: "
                         "the colour scale [-vmax, vmax] must have a finite width")
    import matplotlib
    from matplotlib.colors import Colormap

    if isinstance(cmap, str):
        if cmap not in matplotlib.colormaps:
            raise ValueError(f"cmap {cmap!r} is not a registered colormap name (see matplotlib.colormaps)")
    elif not isinstance(cmap, Colormap):
        raise InputTypeError(f"cmap must be a colormap name or a Colormap, got {_short(cmap)}")
    return W, V, axes, vmax


def _check_square_pair(W, V) -> tuple[np.ndarray, np.ndarray]:
    """Both (2d, 2d) with d >= 1, same shape, finite; ValueError naming the bad one."""
    W, V = as_float("W", W), as_float("V", V)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] == 0 or W.shape[0] % 2:
        raise ValueError(f"W must be square with an even, positive size (2d, 2d), got shape {W.shape}")
    if V.shape != W.shape:
        raise ValueError(f"V has shape {V.shape}, expected {W.shape} to match W")
    return W, V


def _label_blocks(ax, name: str, d: int) -> None:
    """Write ``name + "rc"`` above (r = 1) or below (r = 2) the image, centred on column block c."""
    trans = ax.get_xaxis_transform()  # x in data units (columns), y in axes units (0 bottom, 1 top)
    for c in (1, 2):
        x = (c - 1) * d + (d - 1) / 2  # centre of column block c
        ax.text(x, 1.01, f"{name}1{c}", transform=trans, ha="center", va="bottom", fontsize=8)
        ax.text(x, -0.01, f"{name}2{c}", transform=trans, ha="center", va="top", fontsize=8)


def depth_curves(ax, depths, curves, *, ylabel, xlabel="depth t", logy=False, band=None):
    r"""Plot quantities against depth or loop count t on a log-like x axis that keeps t = 0 (chapters 05-08).

    Parameters
    ----------
    ax : Axes
    depths : ndarray of shape (T,), T >= 1, finite depths t >= 0 (0 allowed).
    curves : dict label -> ndarray of shape (T,) (one curve) or (T, B), B >= 1 (B tasks: the mean over
        tasks is drawn); at least one curve, finite values, str labels not starting with "_". The colour
        is ``COLORS[label]`` for a known label (see :data:`COLORS`), otherwise the next of
        :data:`OTHER_COLORS` (none resembles a COLORS entry).
    ylabel, xlabel : str, axis labels.
    logy : bool, log-scale the y axis (then every curve needs a positive value to show).
    band : pair (lo, hi) of percentiles, 0 <= lo < hi <= 100, optional. For (T, B) curves, shade
        between the lo-th and hi-th percentile over tasks.

    Returns
    -------
    ax : Axes, with the legend outside on the right (see :func:`_legend_outside`).

    Examples
    --------
    >>> fig, ax = plt.subplots(layout="constrained")  # doctest: +SKIP
    >>> depth_curves(ax, [0, 1, 10, 100], {"NGD": frac_ngd, "GD": frac_gd},  # doctest: +SKIP
    ...              ylabel="margin fraction", band=(10, 90))
    """
    depths, curves = _check_curves(ax, depths, curves, ylabel, xlabel, logy, band)
    palette = _colors(list(curves))
    for label, (mean, lo, hi) in curves.items():
        (line,) = ax.plot(depths, mean, color=palette[label], label=label, marker="o", ms=3)
        if lo is not None:
            ax.fill_between(depths, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    # Depth sweeps span decades (1, 10, 100, ...), so x wants a log scale, but log(0) = -inf
    # would silently drop t = 0 (the input iterate). symlog is linear on [0, 1] and
    # logarithmic beyond, so t = 0 stays on the plot with its own "0" tick.
    ax.set_xscale("symlog", linthresh=1.0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend_outside(ax)
    return ax


def _check_curves(ax, depths, curves, ylabel, xlabel, logy, band):
    """Every argument of :func:`depth_curves`; returns ``depths`` and, per label, ``(mean, lo, hi)`` to draw.

    Means and percentiles are taken of the values divided by a power of two near their largest
    magnitude (exact), so values near the float64 limit neither overflow nor warn.
    """
    _check_axes("ax", ax)
    depths = as_float("depths", depths, ndim_min=1)
    if depths.ndim != 1 or depths.size == 0 or np.any(depths < 0):
        raise ValueError(f"depths must be a non-empty 1-D array of values >= 0, got {_short(depths)}")
    _check_labels("curves", curves)
    if not curves:
        raise ValueError("curves is empty: give at least one curve to draw")
    _check_text("ylabel", ylabel)
    _check_text("xlabel", xlabel)
    logy = check_flag("logy", logy)
    if band is not None:
        ok = isinstance(band, (tuple, list)) and len(band) == 2 and all(
            isinstance(b, (int, float, np.integer, np.floating)) and not isinstance(b, (bool, np.bool_)) for b in band)
        if not (ok and 0 <= band[0] < band[1] <= 100):
            raise ValueError(f"band must be a pair of percentiles 0 <= lo < hi <= 100, got {_short(band)}")
    T, drawn = len(depths), {}
    for label, values in curves.items():
        values = as_float(f"curves[{label!r}]", values, ndim_min=1)
        if values.ndim > 2 or values.shape[0] != T or values.size == 0:
            raise ValueError(f"curves[{label!r}] has shape {values.shape}, expected ({T},) or ({T}, B) with B >= 1")
        scale = math.ldexp(1.0, math.frexp(float(np.max(np.abs(values))))[1] - 1)  # a power of two > max|value| / 2
        unit = values / scale  # entries in (-2, 2): no sum below overflows
        mean = values if values.ndim == 1 else unit.mean(axis=1) * scale  # (T,)
        lo = hi = None
        if band is not None and values.ndim == 2:
            lo, hi = np.percentile(unit, band, axis=1) * scale  # (T,) each
        if logy and not np.any(mean > 0):
            raise ValueError(f"curves[{label!r}] has no positive value to show on a log y axis (logy=True)")
        drawn[label] = (mean, lo, hi)
    return depths, drawn


def decision_boundaries(ax, X, y, directions, *, lim=None):
    r"""Scatter a 2-D context and draw each direction's decision line :math:`\langle w, x\rangle = 0` (chapters 05, 09).

    Parameters
    ----------
    ax : Axes
    X : ndarray of shape (n, 2), n >= 1, finite context points.
    y : ndarray of shape (n,), labels in {-1, +1}; +1 drawn as "+", -1 as "o".
    directions : dict label -> w, ndarray of shape (2,), finite, non-zero; str labels not starting
        with "_". Colours as in :func:`depth_curves`.
    lim : float > 0, optional. The view is [-lim, lim]^2; default 1.1 max |X entry| (1 if X = 0).
        1.5 lim must be a finite float.

    Returns
    -------
    ax : Axes
    """
    _check_axes("ax", ax)
    X, y = _check_plane_context(X, y)
    _check_labels("directions", directions)
    checked = {}
    for label, w in directions.items():
        w = as_float(f"directions[{label!r}]", w)
        if w.shape != (2,) or not np.any(w):
            raise ValueError(f"directions[{label!r}] must be a non-zero vector of shape (2,), got {_short(w)}")
        checked[label] = w
    if lim is None:
        lim, name = 1.1 * float(np.abs(X).max()) or 1.0, "X"  # Python floats: overflow gives inf, no warning
    else:
        name = "lim"
        check_positive("lim", lim)
    if 1.5 * float(lim) > np.finfo(np.float64).max:
        raise ValueError(f"{name} is too large to draw: the view [-lim, lim]^2 with lim = {lim!r} must have a "
                         "finite diagonal")
    pos, neg = X[y > 0], X[y < 0]
    ax.scatter(pos[:, 0], pos[:, 1], marker="+", s=50, lw=1.4, color="0.15", label="y = +1")
    ax.scatter(neg[:, 0], neg[:, 1], marker="o", s=28, facecolors="none", edgecolors="0.45", label="y = -1")
    palette = _colors(list(checked))
    for label, w in checked.items():
        seg = separator_segment(w, np.sqrt(2) * lim)  # (2, 2) end points, long enough to cross the whole view
        ax.plot(seg[:, 0], seg[:, 1], color=palette[label], lw=1.8, label=label)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    _legend_outside(ax)
    return ax


def _check_plane_context(X, y) -> tuple[np.ndarray, np.ndarray]:
    """X of shape (n, 2) with n >= 1, y of shape (n,) in {-1, +1}; ValueError naming the bad one."""
    X, y = as_float("X", X), as_labels(y)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n, 2) with n >= 1: these pictures are 2-D only, got shape {X.shape}")
    if y.shape != X.shape[:1]:
        raise ValueError(f"y has shape {y.shape}, expected ({X.shape[0]},) to match X")
    return X, y
