"""The course's recurring figures (ngdformer/plots.py): what each one promises, checked on the drawn artists."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from ngdformer import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _no_overlap(a, b) -> bool:
    """True if display-space boxes ``a`` and ``b`` share no interior point."""
    return a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0


def _random_weights(d, seed=0):
    rng = np.random.default_rng(seed)
    W, V = rng.standard_normal((2, 2 * d, 2 * d))
    V[0, 0] = -7.5  # the largest |entry| of either matrix, negative and in V only
    return W, V


# ---------------------------------------------------------------------- COLORS


def test_colors_cover_the_course_quantities_and_are_distinct():
    for key in ("transformer", "ngd", "gd", "max_margin", "w_star", "construction", "trained"):
        assert key in plots.COLORS
    rgba = [to_rgba(c) for c in plots.COLORS.values()]
    assert len(set(rgba)) == len(rgba)


# -------------------------------------------------------------- weight_heatmap


def test_heatmap_images_share_one_symmetric_scale_equal_to_max_abs_entry():
    W, V = _random_weights(3)
    fig, axes = plots.weight_heatmap(W, V)
    (im_w,), (im_v,) = axes[0].images, axes[1].images
    assert im_w.get_clim() == im_v.get_clim() == (-7.5, 7.5)
    assert np.array_equal(im_w.get_array(), W) and np.array_equal(im_v.get_array(), V)
    assert len(fig.axes) == 3  # the two matrices and a single shared colourbar


def test_heatmap_explicit_vmax_and_all_zero_weights():
    _, axes = plots.weight_heatmap(np.ones((4, 4)), np.zeros((4, 4)), vmax=3.0)
    assert axes[0].images[0].get_clim() == axes[1].images[0].get_clim() == (-3.0, 3.0)
    _, axes = plots.weight_heatmap(np.zeros((4, 4)), np.zeros((4, 4)))
    lo, hi = axes[0].images[0].get_clim()
    assert np.isfinite(lo) and np.isfinite(hi) and lo == -hi and hi > 0


@pytest.mark.parametrize("d", [1, 2, 20])
def test_heatmap_block_lines_and_labels_off_the_image(d):
    fig, axes = plots.weight_heatmap(*_random_weights(d))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax, name in zip(axes, "WV"):
        hlines = [ln for ln in ax.lines if np.allclose(ln.get_ydata(), d - 0.5) and np.ptp(ln.get_xdata()) > 0]
        vlines = [ln for ln in ax.lines if np.allclose(ln.get_xdata(), d - 0.5) and np.ptp(ln.get_ydata()) > 0]
        assert len(hlines) == 1 and len(vlines) == 1
        texts = {t.get_text(): t for t in ax.texts}
        names = [f"{name}{r}{c}" for r in (1, 2) for c in (1, 2)]
        assert set(names) <= set(texts)
        box = ax.get_window_extent(renderer)
        where = {n: texts[n].get_window_extent(renderer) for n in names}
        for n in names:
            assert _no_overlap(where[n], box), f"{n} covers the matrix"
        # row block first, 1 = top/left: "12" is right of "11", "21" below "11"
        split = ax.transData.transform((d - 0.5, 0))[0]  # display x of the column split
        assert where[f"{name}11"].x1 <= split <= where[f"{name}12"].x0
        assert where[f"{name}21"].x1 <= split <= where[f"{name}22"].x0
        assert where[f"{name}21"].y1 <= box.y0 < box.y1 <= where[f"{name}11"].y0


def test_heatmap_draws_on_given_axes():
    fig, given = plt.subplots(1, 2)
    out_fig, out_axes = plots.weight_heatmap(np.eye(2), -np.eye(2), axes=given, titles=("A", "B"))
    assert out_fig is fig and out_axes[0] is given[0] and out_axes[1] is given[1]
    assert [a.get_title() for a in given] == ["A", "B"]


@pytest.mark.parametrize("W, V, name, detail", [
    (np.zeros((3, 3)), np.zeros((3, 3)), "W", r"\(3, 3\)"),  # odd size
    (np.zeros((4, 2)), np.zeros((4, 2)), "W", r"\(4, 2\)"),  # not square
    (np.zeros(4), np.zeros(4), "W", r"\(4,\)"),  # not a matrix
    (np.zeros((4, 4)), np.zeros((2, 2)), "V", r"\(2, 2\)"),  # shapes differ
    (np.zeros((4, 4)), np.full((4, 4), np.nan), "V", "nan"),  # not finite
])
def test_heatmap_rejects_bad_weights_naming_them(W, V, name, detail):
    with pytest.raises(ValueError, match=rf"^{name} .*{detail}"):
        plots.weight_heatmap(W, V)


# ---------------------------------------------------------------- depth_curves

DEPTHS = np.array([0, 1, 10, 100, 1000])


def test_depth_curves_keep_depth_zero_visible_on_a_log_like_axis():
    fig, ax = plt.subplots(layout="constrained")
    plots.depth_curves(ax, DEPTHS, {"NGD": np.linspace(1.0, 2.0, 5)}, ylabel="margin")
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    assert lo < 0 < 1000 < hi
    box = ax.get_window_extent()
    x = ax.transData.transform(np.column_stack([DEPTHS, np.full(5, 1.5)]))[:, 0]  # display x of each depth
    assert np.all(np.isfinite(x)) and box.x0 < x[0] < box.x1
    assert np.allclose(np.diff(x[1:]), x[2] - x[1])  # 1, 10, 100, 1000 evenly spaced: log beyond depth 1
    assert "0" in [t.get_text().replace("$", "").replace("\\mathdefault{", "").strip("}") for t in ax.get_xticklabels()]
    assert ax.get_xlabel() == "depth t" and ax.get_ylabel() == "margin"


def test_depth_curves_legend_sits_outside_the_axes():
    fig, ax = plt.subplots(layout="constrained")
    curves = {"NGD": np.ones(5), "GD": np.linspace(0, 1, 5), "transformer": np.linspace(1, 0, 5)}
    plots.depth_curves(ax, DEPTHS, curves, ylabel="y")
    fig.canvas.draw()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(curves)
    assert _no_overlap(legend.get_window_extent(), ax.get_window_extent())


def test_depth_curves_draw_the_task_mean_and_a_percentile_band():
    rng = np.random.default_rng(1)
    values = rng.exponential(size=(5, 40))  # skewed: mean and median differ
    fig, ax = plt.subplots()
    plots.depth_curves(ax, DEPTHS, {"trained": values}, ylabel="loss", band=(10, 90))
    (line,) = ax.lines  # one line for 40 tasks
    assert np.allclose(line.get_ydata(), values.mean(axis=1))
    (poly,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    verts = np.concatenate([p.vertices for p in poly.get_paths()])  # (k, 2)
    for q in (10, 90):
        target = np.column_stack([DEPTHS, np.percentile(values, q, axis=1)])  # (5, 2)
        assert all(np.any(np.all(np.isclose(verts, p), axis=1)) for p in target), f"band misses percentile {q}"
    assert verts[:, 1].min() >= values.min() and verts[:, 1].max() <= values.max()  # not the full range
    assert np.isclose(verts[:, 1].min(), np.percentile(values, 10, axis=1).min())
    assert to_rgba(poly.get_facecolor()[0])[:3] == to_rgba(plots.COLORS["trained"])[:3]


def test_depth_curves_without_band_shade_nothing_and_logy_sets_log_scale():
    fig, ax = plt.subplots()
    plots.depth_curves(ax, DEPTHS, {"GD": np.ones((5, 3))}, ylabel="y", logy=True)
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert ax.get_yscale() == "log"


def test_depth_curves_take_known_colours_from_COLORS():
    fig, ax = plt.subplots()
    labels = {"NGD (eta = 1)": "ngd", "gd, t = 5": "gd", "Max margin": "max_margin", "transformer": "transformer"}
    plots.depth_curves(ax, DEPTHS, {lab: np.arange(5.0) for lab in labels}, ylabel="y")
    for line, key in zip(ax.lines, labels.values()):
        assert to_rgba(line.get_color()) == to_rgba(plots.COLORS[key]), line.get_label()
    fig, ax = plt.subplots()
    plots.depth_curves(ax, DEPTHS, {"something else": np.arange(5.0)}, ylabel="y")
    assert to_rgba(ax.lines[0].get_color()) not in [to_rgba(c) for c in plots.COLORS.values()]


def test_depth_curves_reject_a_curve_of_the_wrong_length():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"curves\['NGD'\].*\(4,\)"):
        plots.depth_curves(ax, DEPTHS, {"NGD": np.ones(4)}, ylabel="y")


# --------------------------------------------------------- decision_boundaries


def _context():
    X = np.array([[1.0, 2.0], [2.0, 0.5], [-1.0, -1.5], [-0.5, -2.0]])
    return X, np.array([1.0, 1.0, -1.0, -1.0])


def test_decision_boundaries_draw_each_line_perpendicular_to_its_w():
    X, y = _context()
    directions = {"max margin": np.array([1.0, 1.0]), "NGD, t = 3": np.array([3.0, -0.5]),
                  "w_star": np.array([0.0, 2.0])}
    fig, ax = plt.subplots(layout="constrained")
    plots.decision_boundaries(ax, X, y, directions)
    assert len(ax.lines) == len(directions)
    for line, (label, w) in zip(ax.lines, directions.items()):
        pts = np.column_stack([line.get_xdata(), line.get_ydata()])  # (k, 2)
        assert np.allclose(pts @ w, 0.0, atol=1e-12)  # on <w, x> = 0, so through the origin, perpendicular to w
        assert np.ptp(pts, axis=0).max() > 1.0  # an actual line, not a point
        assert line.get_label() == label
    colours = [to_rgba(line.get_color()) for line in ax.lines]
    assert colours == [to_rgba(plots.COLORS[k]) for k in ("max_margin", "ngd", "w_star")]
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "x2"
    assert ax.get_aspect() == 1.0
    fig.canvas.draw()
    assert _no_overlap(ax.get_legend().get_window_extent(), ax.get_window_extent())


def test_decision_boundaries_scatter_the_classes_with_distinct_markers():
    X, y = _context()
    fig, ax = plt.subplots()
    plots.decision_boundaries(ax, X, y, {"gd": np.array([1.0, 0.0])})
    pos, neg = ax.collections[:2]
    assert np.allclose(pos.get_offsets(), X[y > 0]) and np.allclose(neg.get_offsets(), X[y < 0])
    pos_marker, neg_marker = pos.get_paths()[0].vertices, neg.get_paths()[0].vertices
    assert pos_marker.shape != neg_marker.shape or not np.allclose(pos_marker, neg_marker)
    lim = ax.get_xlim()
    assert lim[0] < X[:, 0].min() and X[:, 0].max() < lim[1]


def test_decision_boundaries_refuse_other_dimensions():
    fig, ax = plt.subplots()
    X3 = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"^X .*\(4, 3\)"):
        plots.decision_boundaries(ax, X3, np.ones(4), {"gd": np.ones(3)})
    X, y = _context()
    with pytest.raises(ValueError, match=r"directions\['gd'\]"):
        plots.decision_boundaries(ax, X, y, {"gd": np.ones(3)})


# ------------------------------------------------------- every argument checked


def _axes_pair():
    return plt.subplots(1, 2)[1]


@pytest.mark.parametrize("kw, match", [
    ({"titles": ("only one",)}, r"titles must be a pair of str"),
    ({"titles": "WV"}, r"titles must be a pair of str"),
    ({"titles": (1, 2)}, r"titles\[0\] must be a str"),
    ({"vmax": True}, r"vmax must be a real number"),
    ({"vmax": np.inf}, r"vmax must be finite"),
    ({"vmax": 1.7e308}, r"vmax = 1\.7e\+308 .* is too large"),
    ({"cmap": "no such map"}, r"cmap 'no such map' is not a registered colormap"),
    ({"cmap": 3}, r"cmap must be a colormap name or a Colormap"),
    ({"axes": "ab"}, r"axes must hold 2 Axes"),
    ({"axes": (None, None)}, r"axes\[0\] must be a matplotlib Axes"),
])
def test_heatmap_checks_every_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        plots.weight_heatmap(np.eye(2), np.eye(2), **kw)


def test_heatmap_of_weights_near_the_float_limit_is_refused_not_warned():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"the largest \|entry\| of W and V"):
            plots.weight_heatmap(np.full((2, 2), 1.7e308), -np.eye(2), axes=_axes_pair())
        plots.weight_heatmap(np.full((2, 2), 1e300), -np.eye(2), axes=_axes_pair())


@pytest.mark.parametrize("ax, depths, curves, kw, match", [
    (None, DEPTHS, {"NGD": np.ones(5)}, {}, r"ax must be a matplotlib Axes"),
    ("ax", [], {}, {}, r"depths must be a non-empty 1-D array"),
    ("ax", DEPTHS, {}, {}, r"curves is empty"),
    ("ax", DEPTHS, [np.ones(5)], {}, r"curves must be a dict label -> array"),
    ("ax", DEPTHS, {"_hidden": np.ones(5)}, {}, r"curves has the label '_hidden'"),
    ("ax", DEPTHS, {3: np.ones(5)}, {}, r"curves has the label 3"),
    ("ax", DEPTHS, {"NGD": np.ones((5, 0))}, {}, r"curves\['NGD'\] has shape \(5, 0\), expected \(5,\) or \(5, B\)"),
    ("ax", DEPTHS, {"NGD": np.full(5, np.nan)}, {}, r"curves\['NGD'\] contains a non-finite value"),
    ("ax", DEPTHS, {"NGD": -np.ones(5)}, {"logy": True}, r"curves\['NGD'\] has no positive value .* log y axis"),
    ("ax", DEPTHS, {"NGD": np.ones(5)}, {"logy": "yes"}, r"logy must be True or False"),
    ("ax", DEPTHS, {"NGD": np.ones(5)}, {"ylabel": 3}, r"ylabel must be a str"),
    ("ax", DEPTHS, {"NGD": np.ones(5)}, {"xlabel": None}, r"xlabel must be a str"),
    ("ax", DEPTHS, {"NGD": np.ones((5, 2))}, {"band": (True, 50)}, r"band must be a pair of percentiles"),
    ("ax", DEPTHS, {"NGD": np.ones((5, 2))}, {"band": ("10", "90")}, r"band must be a pair of percentiles"),
    ("ax", DEPTHS, {"NGD": np.ones((5, 2))}, {"band": (90, 10)}, r"band must be a pair of percentiles"),
])
def test_depth_curves_check_every_argument(ax, depths, curves, kw, match):
    ax = plt.subplots()[1] if ax == "ax" else ax
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            plots.depth_curves(ax, depths, curves, **({"ylabel": "y"} | kw))


def test_depth_curves_of_values_near_the_float_limit_draw_without_warnings():
    values = np.full((5, 3), 1.7e308)
    values[:, 1] = -1.7e308
    fig, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.depth_curves(ax, DEPTHS, {"GD": values}, ylabel="y", band=(0, 100))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 1.7e308 / 3)


@pytest.mark.parametrize("ax, X, directions, kw, match", [
    (None, None, {"gd": np.ones(2)}, {}, r"ax must be a matplotlib Axes"),
    ("ax", None, [np.ones(2)], {}, r"directions must be a dict"),
    ("ax", None, {("a",): np.ones(2)}, {}, r"directions has the label \('a',\)"),
    ("ax", None, {"gd": np.zeros(2)}, {}, r"directions\['gd'\] must be a non-zero vector"),
    ("ax", None, {"gd": np.array([1.0, np.inf])}, {}, r"directions\['gd'\] contains a non-finite value"),
    ("ax", None, {"gd": np.ones(2)}, {"lim": 1.7e308}, r"lim is too large to draw"),
    ("ax", np.full((2, 2), 1.7e308), {"gd": np.ones(2)}, {}, r"X is too large to draw"),
    ("ax", np.zeros((0, 2)), {"gd": np.ones(2)}, {}, r"X must have shape \(n, 2\) with n >= 1"),
])
def test_decision_boundaries_check_every_argument(ax, X, directions, kw, match):
    ax = plt.subplots()[1] if ax == "ax" else ax
    X0, y0 = _context()
    X, y = (X0, y0) if X is None else (X, np.ones(len(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            plots.decision_boundaries(ax, X, y, directions, **kw)
