"""The guided tour behind ``python -m ngdformer``: the identity, the looped model, one figure.

Deterministic from its seed: every random draw goes through one ``np.random.Generator``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .attention import attention_forward
from .checks import MAX_DEPTH, MAX_ELEMENTS, InputTypeError, check_flag
from .construction import ngd_weights
from .ood import Shift, evaluate_shift
from .plots import COLORS, depth_curves
from .solvers import ngd_step
from .tasks import embed, read_weights, sample_tasks
from .train_cli import (MAX_D, MAX_SEED, MAX_STEP, N_TEST, Bound, check_options, check_out_folder, check_sizes,
                        tour_training_stage, undefined_as_na)

DEPTHS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

#: The range of every numeric setting of the tour (and of its command-line option of the same name).
TOUR_OPTIONS = {
    "seed": Bound(int, 0, MAX_SEED),
    "batch": Bound(int, 1, MAX_ELEMENTS),
    "n": Bound(int, 1, MAX_ELEMENTS),
    "d": Bound(int, 1, MAX_D),
    "eta": Bound(float, 0, MAX_STEP, low_open=True),
    "eta_gd": Bound(float, 0, MAX_STEP, low_open=True),
}
TOUR_FILES = ("tour.png", "tour_layer.npz")


def construction_error(rng: np.random.Generator, X, y, etas=(0.1, 0.5, 1.0), scales=(0.0, 1.0, 1e3)) -> float:
    """Largest relative error between one constructed layer and one NGD step over step sizes and |w0| scales."""
    worst = 0.0
    for eta in etas:
        W, V = ngd_weights(X.shape[-1], eta)
        for scale in scales:
            w0 = scale * rng.standard_normal(X.shape[:-2] + X.shape[-1:])
            out = read_weights(attention_forward(embed(X, y, w0), W, V, X.shape[-2])[0])
            ref = ngd_step(w0, X, y, eta)
            worst = max(worst, float(np.max(np.linalg.norm(out - ref, axis=-1) / np.linalg.norm(ref, axis=-1))))
    return worst


def depth_table(rng: np.random.Generator, *, batch: int, n: int, d: int, eta: float, eta_gd: float,
                depths=DEPTHS) -> dict:
    """Per-depth metrics of the looped constructed layer, NGD and GD from w0 = 0 on fresh tasks.

    A thin use of :func:`ngdformer.ood.evaluate_shift` in distribution; see
    :func:`ngdformer.ood.evaluate_ood` for the keys (``diff_max``, ``cos_tf``, ``margin_ngd``, ...).
    """
    W, V = ngd_weights(d, eta)
    return evaluate_shift(rng, W, V, Shift("in distribution"), eta=eta, n=n, depth=max(depths), batch=batch,
                          sigma0=0.0, eta_gd=eta_gd, depths=np.asarray(depths))


def format_table(table: dict) -> str:
    """Render :func:`depth_table` as fixed-width text, one row per depth."""
    head = (f"{'depth':>5} | {'|tf-ngd|':>9} | {'cos(w*) tf / ngd / gd':^23} | "
            f"{'margin/max tf / ngd / gd':^24} | {'held-out acc tf / ngd / gd':^26}")
    rows = [head, "-" * len(head)]
    for k, depth in enumerate(table["depth"]):
        cell = lambda m: " / ".join(f"{table[f'{m}_{key}'][k]:.3f}" for key in ("tf", "ngd", "gd"))  # noqa: E731
        rows.append(f"{depth:>5} | {table['diff_max'][k]:9.1e} | {cell('cos'):^23} | {cell('margin'):^24} | "
                    f"{cell('acc'):^26}")
    return "\n".join(rows)


def plot_tour(table: dict, path: str) -> None:
    """Save the tour figure: normalized margin, cosine to w* and transformer-NGD gap over depth.

    Parameters
    ----------
    table : dict from :func:`depth_table`
    path : str, the PNG file to write
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"ngd": "NGD", "gd": "GD", "tf": "transformer (on top of NGD)"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    depth_curves(axes[0], table["depth"], {names[k]: table[f"margin_{k}"] for k in names},
                 ylabel="normalized margin / max-margin value")
    axes[0].axhline(1.0, color=COLORS["max_margin"], lw=0.8)  # the max-margin value
    axes[0].set_title("Margin: NGD is fast, GD is slow")
    depth_curves(axes[1], table["depth"], {names[k]: table[f"cos_{k}"] for k in names}, ylabel="cosine to w*")
    axes[1].set_title("Direction of the iterate")
    depth_curves(axes[2], table["depth"][1:], {"construction": np.maximum(table["diff_max"][1:], 1e-17)},
                 ylabel="largest ||u/|u| - v/|v|||", logy=True)
    axes[2].set_title("Transformer vs NGD (round-off)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_tour(*, seed: int = 0, batch: int = 64, n: int = 40, d: int = 10, eta: float = 0.25,
             eta_gd: float = 0.25, depths=DEPTHS, out: str = "out", train: bool = True,
             quiet: bool = False) -> dict:
    """Run the whole tour, print its tables, save ``<out>/tour.png``; return the measured numbers.

    Every setting is checked before any work starts (:func:`check_tour_settings`).
    """
    depths = check_tour_settings(seed=seed, batch=batch, n=n, d=d, eta=eta, eta_gd=eta_gd, depths=depths, out=out,
                                 train=train, quiet=quiet)
    start = time.perf_counter()
    say = (lambda *a: None) if quiet else print
    rng = np.random.default_rng(seed)
    X, y, _ = sample_tasks(rng, batch, n, d)
    say(f"ngdformer tour (seed {seed}): {batch} tasks, n = {n} examples in d = {d} dimensions, tokens Z of shape "
        f"({batch}, {2 * d}, {n + 1})\n")
    err = construction_error(rng, X, y)
    say("1. One attention layer with W*, V* = one NGD step (eta in {0.1, 0.5, 1}, |w0| in {0, ~3, ~3e3}):")
    say(f"   largest relative error {err:.1e}\n")
    table = depth_table(rng, batch=batch, n=n, d=d, eta=eta, eta_gd=eta_gd, depths=depths)
    say(f"2. Looping the layer (eta = {eta}) against NGD (eta = {eta}) and GD on the logistic loss (eta = {eta_gd}),")
    say(f"   on {batch} fresh tasks from w0 = 0, mean over tasks; |tf-ngd| is the largest normalized difference:")
    say(undefined_as_na(format_table(table)) + "\n")
    results = {"construction_error": err, "table": table}
    if train:
        results["training"] = tour_training_stage(rng, out, quiet=quiet)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tour.png")
    plot_tour(table, path)
    results["seconds"] = time.perf_counter() - start
    say(f"Figure saved to {path}. Tour finished in {results['seconds']:.1f} s.")
    return results


def tour_sizes(*, batch: int, n: int, d: int, last_depth: int = DEPTHS[-1]) -> list:
    """The largest arrays the tour allocates, as ``(what, {setting: value}, shape)`` for :func:`check_sizes`."""
    return [("the tokens Z (batch, 2d, n + 1)", {"batch": batch, "d": d, "n": n}, (batch, 2 * d, n + 1)),
            ("the attention scores (batch, n, n + 1)", {"batch": batch, "n": n}, (batch, n, n + 1)),
            (f"the held-out points (batch, {N_TEST}, d)", {"batch": batch, "d": d}, (batch, N_TEST, d)),
            (f"the trajectories (depth + 1, batch, d) up to depth {last_depth}", {"batch": batch, "d": d},
             (last_depth + 1, batch, d))]


def check_tour_settings(*, seed, batch, n, d, eta, eta_gd, depths, out, train, quiet) -> np.ndarray:
    """Check every setting of :func:`run_tour` before any work: ranges, sizes, depths and the output folder.

    Parameters
    ----------
    seed, batch, n, d, eta, eta_gd : numbers in the ranges of ``TOUR_OPTIONS``
    depths : sequence of int, non-decreasing, in [0, MAX_DEPTH]
    out : str or os.PathLike, the folder for the figure (and the trained layer), created if missing
    train, quiet : bool

    Returns
    -------
    depths : ndarray of int64, shape (K,)
    """
    values = dict(seed=seed, batch=batch, n=n, d=d, eta=eta, eta_gd=eta_gd)
    for name, value in values.items():
        if value is None:
            raise InputTypeError(f"{name} must be {TOUR_OPTIONS[name].describe()}, got None")
    check_options(values, TOUR_OPTIONS, label=str)
    arr = np.asarray(depths)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise ValueError(f"depths must be a non-empty 1-D sequence of integers, got {str(depths)[:60]}")
    if arr.min() < 0 or arr.max() > MAX_DEPTH or np.any(np.diff(arr) < 0):
        raise ValueError(f"depths must be non-decreasing integers in [0, {MAX_DEPTH}], got {str(depths)[:60]}")
    check_sizes(tour_sizes(batch=batch, n=n, d=d, last_depth=int(arr[-1])), label=str)
    check_out_folder(out, "out", TOUR_FILES)
    check_flag("train", train)
    check_flag("quiet", quiet)
    return arr.astype(np.int64)
