"""``python -m ngdformer train``: train a layer by hand, save it, and report (chapters 06-07).

:func:`add_train_arguments` fills an ``argparse`` (sub)parser, :func:`check_train_options` checks every
option before any work starts (each has a stated range; sizes are refused beyond ``MAX_ELEMENTS``),
:func:`run_train` runs it, and :func:`tour_training_stage` is the short training stage of the guided
tour. Deterministic from the seed: one ``np.random.Generator`` drives training and evaluation.
The range machinery (:class:`Bound`, :func:`option_type`, :func:`check_options`) is shared with the tour's
command line.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from typing import NamedTuple

import numpy as np

from .checks import MAX_DEPTH, MAX_ELEMENTS, check_flag, check_generator
from .looped_training import OBJECTIVES, train_looped
from .ood import Shift, default_shifts, evaluate_ood, format_ood_table
from .persistence import save_weights
from .training import block, block_scales, distance_to_construction, off_identity, train_one_step_layer

MAX_SEED = 2**63 - 1
MAX_D = int(math.isqrt(MAX_ELEMENTS)) // 2  # the layer's (2d, 2d) weights hold at most MAX_ELEMENTS entries
MAX_STEP = 1e3  # largest step size (eta, eta_gd) and scale of w0 the command line takes
MAX_LR = 10.0
N_TEST = 1000  # held-out points per task in the evaluation (ngdformer.ood's default)
CHOICES = {"optimizer": ("adam", "sgd"), "init": ("zeros", "random"), "params": ("full", "blocks"),
           "objective": OBJECTIVES, "schedule": ("cosine", "constant")}
_UNDEFINED_NOTE = "n/a: undefined (the margin fraction of a context with no max-margin direction, as under label noise)"


class Bound(NamedTuple):
    """The range of one numeric command-line option; ``describe()`` states it in messages and ``--help``."""

    kind: type  #: int or float
    low: float  #: smallest value (excluded if ``low_open``)
    high: float  #: largest value (excluded if ``high_open``)
    low_open: bool = False  #: the range excludes ``low``
    high_open: bool = False  #: the range excludes ``high``

    def describe(self) -> str:
        """``"an integer in [1, 268435456]"`` or ``"a number in (0, 1000]"``."""
        fmt = (lambda v: str(int(v))) if self.kind is int else (lambda v: f"{v:g}")
        return (f"{'an integer' if self.kind is int else 'a number'} in {'(' if self.low_open else '['}"
                f"{fmt(self.low)}, {fmt(self.high)}{')' if self.high_open else ']'}")

    def holds(self, value) -> bool:
        """Whether ``value`` (already an int or float) is of the kind and in the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        if self.kind is int and not isinstance(value, (int, np.integer)):
            return False
        try:
            if not math.isfinite(value):
                return False
        except OverflowError:  # an int beyond the float range, e.g. 10**400
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


def option_type(bound: Bound):
    """An ``argparse`` ``type=`` that parses text as ``bound.kind`` and refuses values outside ``bound``.

    argparse turns the refusal into ``argument --flag: must be <range>, got '<text>'``, one line, exit status 2.
    """

    def parse(text: str):
        try:
            value = bound.kind(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not bound.holds(value):
            raise argparse.ArgumentTypeError(f"must be {bound.describe()}, got {text!r}")
        return value

    parse.__name__ = bound.kind.__name__
    return parse


def flag(dest: str) -> str:
    """The command-line spelling of an option: ``"ood_depth"`` -> ``"--ood-depth"``."""
    return "--" + dest.replace("_", "-")


def cli_label(dest: str) -> str:
    """How an error message names a command-line option: ``argument --ood-depth`` (argparse's own wording)."""
    return f"argument {flag(dest)}"


def check_options(values, bounds: dict, label=cli_label) -> None:
    """Check each ``dest: bound`` of ``bounds`` on ``values`` (a namespace or a dict; None means "the default").

    Raises ``ValueError`` naming the option (``label(dest)``) and the value: a namespace built by hand is held
    to the same ranges as one from the parser.
    """
    get = values.get if isinstance(values, dict) else (lambda dest: getattr(values, dest))
    for dest, bound in bounds.items():
        value = get(dest)
        if value is not None and not bound.holds(value):
            raise ValueError(f"{label(dest)}: must be {bound.describe()}, got {str(value)[:40]!r}")


def check_sizes(sizes, label=flag) -> None:
    """Refuse any array of ``sizes`` (``(what, {dest: value}, shape)``) with more than ``MAX_ELEMENTS`` entries."""
    for what, given, shape in sizes:
        total = math.prod(int(k) for k in shape)
        if total > MAX_ELEMENTS:
            names = ", ".join(f"{label(dest)} {value}" for dest, value in given.items())
            raise ValueError(f"{names} together are too large: {what} would hold {total} entries; the limit is "
                             f"{MAX_ELEMENTS} (MAX_ELEMENTS)")


def check_out_folder(out, name: str, files) -> str:
    """Check the output folder ``out`` (named ``name`` in messages) can hold ``files`` before any work starts.

    ``out`` may not exist yet (it is created, parents included), but it must not be empty, nor an existing
    file, nor lie under a file, and none of ``files`` inside it may be a folder.
    """
    out = os.fspath(out) if isinstance(out, os.PathLike) else out
    if not isinstance(out, str) or not out:
        raise ValueError(f"{name}: must name a folder, got {str(out)[:60]!r}")
    if "\0" in out:
        raise ValueError(f"{name}: contains a NUL character: {out[:60]!r}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{name}: {out!r} is an existing file, not a folder")
    ancestor = os.path.abspath(out)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(f"{name}: cannot create the folder {out!r}: {ancestor!r} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write in {ancestor!r} (permission denied)")
    for file in files:
        if os.path.isdir(os.path.join(out, file)):
            raise ValueError(f"{name}: {os.path.join(out, file)!r} is a folder, so the file cannot be written")
    return out


def undefined_as_na(table: str) -> str:
    """Show NaN entries of a printed table as ``n/a`` with a note saying why, never as if they were numbers."""
    marked = re.sub(r"\bnan\b", "n/a", table)
    return marked if marked == table else f"{marked}\n{_UNDEFINED_NOTE}"


#: The range of every numeric option of ``train``, by destination name.
TRAIN_OPTIONS = {
    "seed": Bound(int, 0, MAX_SEED),
    "n": Bound(int, 1, MAX_ELEMENTS),
    "d": Bound(int, 1, MAX_D),
    "eta": Bound(float, 0, MAX_STEP, low_open=True),
    "iterations": Bound(int, 0, MAX_DEPTH),
    "batch": Bound(int, 1, MAX_ELEMENTS),
    "lr": Bound(float, 0, MAX_LR, low_open=True),
    "momentum": Bound(float, 0, 1, high_open=True),
    "sigma0": Bound(float, 0, MAX_STEP),
    "depth": Bound(int, 1, MAX_DEPTH),
    "ood_depth": Bound(int, 1, MAX_DEPTH),
    "ood_batch": Bound(int, 1, MAX_ELEMENTS),
}


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` options to ``parser`` (every option has a default and a stated range; see ``train --help``).

    Parameters
    ----------
    parser : argparse.ArgumentParser, filled in place

    Returns
    -------
    parser : the same parser
    """
    parser.description = ("Train one softmax attention layer by hand (NumPy gradients, hand-written Adam/SGD): by "
                          "default on one-step NGD supervision, which recovers the construction W*, V*; with "
                          "--depth L, a looped model of depth L from a small random start on an end task. Saves the "
                          "weights (.npz) and prints the final numbers and an out-of-distribution table against NGD. "
                          "Every option is checked before any work starts; a bad value is refused with one line "
                          "naming it (exit status 2).")

    def add(option, help_text, **kwargs):
        bound = TRAIN_OPTIONS.get(option[2:].replace("-", "_"))
        if bound is not None:
            kwargs["type"] = option_type(bound)
            help_text = f"{help_text}; {bound.describe()}"
        parser.add_argument(option, help=help_text, **kwargs)

    add("--seed", "seed of the one random generator (default 0)", default=0)
    add("--n", "context size n (default 40)", default=40)
    add("--d", "input dimension d (default 10)", default=10)
    add("--eta", "NGD step size the one-step layer is taught, and of the target of --objective ngd (default 0.5)",
        default=0.5)
    add("--iterations", "optimizer steps (default 500; 3000 with --depth; 0 saves the start weights)", default=None)
    add("--batch", "tasks per iteration (default 32; 64 with --depth)", default=None)
    add("--lr", "learning rate (default 2e-2 for adam one-step, 1e-2 for adam with --depth, 0.5 for sgd)",
        default=None)
    add("--optimizer", "hand-written optimizer (default adam)", choices=CHOICES["optimizer"], default="adam")
    add("--momentum", "SGD momentum (default 0.9)", default=0.9)
    add("--init", "one-step start (default zeros)", choices=CHOICES["init"], default="zeros")
    add("--params", "one-step: train full W, V or only the blocks W12, V11, V21 (default full)",
        choices=CHOICES["params"], default="full")
    add("--sigma0", "scale of w0 (default 1/sqrt(d) one-step, 0 with --depth)", default=None)
    add("--depth", "train a looped model of depth L from scratch instead of one layer on one-step targets",
        default=None, metavar="L")
    add("--objective", "end task with --depth: w_star, logistic, or ngd (match L NGD steps of size --eta) "
        "(default w_star)", choices=CHOICES["objective"], default="w_star")
    add("--schedule", "learning-rate schedule: cosine decay to 0 over the run, or constant (default cosine)",
        choices=CHOICES["schedule"], default="cosine")
    add("--ood-depth", "depth of the out-of-distribution evaluation (default 100)", default=100)
    add("--ood-batch", "tasks per shift in the evaluation (default 64)", default=64)
    add("--out", "folder for the weights file, created if missing (default ./out)", default="out")
    add("--quiet", "print nothing", action="store_true")
    return parser


def _settings(args) -> dict:
    """The options with their defaults filled in (they depend on --depth and --optimizer)."""
    looped = args.depth is not None
    return {"looped": looped,
            "iterations": args.iterations if args.iterations is not None else (3000 if looped else 500),
            "batch": args.batch if args.batch is not None else (64 if looped else 32),
            "lr": args.lr if args.lr is not None else ((1e-2 if looped else 2e-2) if args.optimizer == "adam" else 0.5),
            "sigma0": args.sigma0 if args.sigma0 is not None else (0.0 if looped else 1.0 / np.sqrt(args.d)),
            "name": f"looped_L{args.depth}.npz" if looped else "layer.npz"}


def check_train_options(args: argparse.Namespace) -> dict:
    """Check every option of ``train`` before any work: ranges, choices, sizes and the output folder.

    Parameters
    ----------
    args : argparse.Namespace from a parser filled by :func:`add_train_arguments` (or built by hand with
        the same attributes)

    Returns
    -------
    settings : dict, the options with their defaults filled in (``looped``, ``iterations``, ``batch``,
        ``lr``, ``sigma0``, ``name`` of the weights file)

    Raises
    ------
    ValueError naming the option and its value (``argument --eta: must be a number in (0, 1000], got ...``).
    """
    check_options(args, TRAIN_OPTIONS)
    for dest, choices in CHOICES.items():
        if getattr(args, dest) not in choices:
            raise ValueError(f"{cli_label(dest)}: must be one of {choices}, got {str(getattr(args, dest))[:40]!r}")
    check_flag(cli_label("quiet"), args.quiet)
    s = _settings(args)
    n, d, batch, ob, od = args.n, args.d, s["batch"], args.ood_batch, args.ood_depth
    sizes = [("the training tokens (batch, 2d, n + 1)", {"batch": batch, "d": d, "n": n}, (batch, 2 * d, n + 1)),
             ("the evaluation's tokens at n -> 2n (ood-batch, 2d, 2n + 1)", {"ood_batch": ob, "d": d, "n": n},
              (ob, 2 * d, 2 * n + 1)),
             ("the evaluation's attention scores at n -> 2n (ood-batch, 2n, 2n + 1)", {"ood_batch": ob, "n": n},
              (ob, 2 * n, 2 * n + 1)),
             (f"the evaluation's held-out points (ood-batch, {N_TEST}, d)", {"ood_batch": ob, "d": d},
              (ob, N_TEST, d)),
             ("the evaluation's trajectories (ood-depth + 1, ood-batch, d)", {"ood_depth": od, "ood_batch": ob,
                                                                             "d": d}, (od + 1, ob, d))]
    if s["looped"]:
        L = args.depth
        sizes += [("the caches of the loops (depth, batch, n + 1, 6d + n + 1)",
                   {"depth": L, "batch": batch, "n": n, "d": d}, (L, batch, n + 1, 6 * d + n + 1)),
                  ("the evaluation's trajectories (depth + 1, ood-batch, d)", {"depth": L, "ood_batch": ob, "d": d},
                   (L + 1, ob, d))]
    check_sizes(sizes)
    check_out_folder(args.out, cli_label("out"), [s["name"]])
    return s


def run_train(args: argparse.Namespace) -> int:
    """Train, save to ``<out>/layer.npz`` (or ``looped_L<L>.npz``), print a report; return an exit code.

    Every option is checked first (:func:`check_train_options`); a training run that diverges (a loss or
    weight that is not finite, or weights whose looped evaluation overflows) is reported as such, with
    nothing saved.

    Parameters
    ----------
    args : argparse.Namespace from a parser filled by :func:`add_train_arguments`

    Returns
    -------
    code : int, 0 on success, 2 if an argument was refused or training diverged, 1 if the weights could not be
        written (the message goes to stderr, one line)
    """
    try:
        settings = check_train_options(args)
        report = _train_and_report(args, settings)
    except ValueError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(report)
    return 0


def _train_and_report(args, s: dict) -> str:
    """Kernel of :func:`run_train` on checked options."""
    rng = np.random.default_rng(args.seed)
    iterations, batch, lr, sigma0 = s["iterations"], s["batch"], s["lr"], s["sigma0"]
    common = dict(n=args.n, d=args.d, iterations=iterations, batch=batch, lr=lr, optimizer=args.optimizer,
                  momentum=args.momentum, sigma0=sigma0, schedule=args.schedule, quiet=args.quiet)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging run is diagnosed below
            if s["looped"]:
                W, V, hist = train_looped(rng, depth=args.depth, objective=args.objective, eta=args.eta, **common)
            else:
                W, V, hist = train_one_step_layer(rng, eta=args.eta, init=args.init, params=args.params, **common)
    except ValueError as exc:  # every option is in range: a value refused mid-run (a non-finite gradient) is divergence
        raise ValueError(f"training diverged ({exc}); try a smaller --lr (it was {lr:g}); nothing was saved") from None
    _check_converged(W, V, hist["loss"], lr)
    if s["looped"]:
        c1, c2 = block_scales(W, V)
        eta = c1 * c2 if c1 * c2 > 0 else args.eta  # W12 = -c1 I, V21 = c2 I is NGD with step c1 c2 on c1 w
        kind, depth = "looped", args.depth
        if iterations:
            lines = [f"looped model, L = {depth}, objective {args.objective}: {iterations} iterations in "
                     f"{hist['seconds']:.1f} s, "
                     f"loss {hist['loss'][0]:.3e} -> {np.mean(hist['loss'][-50:]):.3e} (mean of the last 50)"]
        else:
            lines = [f"looped model, L = {depth}: no training (--iterations 0), the random start"]
        lines += [f"c1 = -tr(W12)/d = {c1:.4f}, c2 = tr(V21)/d = {c2:.4f}; off-identity ratio "
                  f"W12 {off_identity(block(W, '12')):.3f}, V21 {off_identity(block(V, '21')):.3f}",
                  f"compared with NGD at eta = c1 c2 = {eta:.4f} (directions only: the iterate is NGD's / c1)"]
        shifts = default_shifts(args.n, args.d, depth=depth, long_depth=args.ood_depth, sigma0=sigma0)
        ood_depth = depth
    else:
        eta, kind, depth = args.eta, "one_step", 1
        if iterations:
            lines = [f"one-step layer, eta = {eta}: {iterations} iterations in {hist['seconds']:.1f} s, "
                     f"loss {hist['loss'][0]:.3e} -> {hist['loss'][-1]:.3e}",
                     f"relative distance to (W*, V*): {hist['dist'][-1]:.3e} (excited blocks "
                     f"{hist['dist_excited'][-1]:.3e}); c1 = {hist['c1'][-1]:.6f}, c2 = {hist['c2'][-1]:.6f}"]
        else:
            c1, c2 = block_scales(W, V)
            lines = [f"one-step layer, eta = {eta}: no training (--iterations 0), the {args.init} start",
                     f"relative distance to (W*, V*): {distance_to_construction(W, V, eta):.3e}; "
                     f"c1 = {c1:.6f}, c2 = {c2:.6f}"]
        shifts, ood_depth = default_shifts(args.n, args.d, depth=args.ood_depth, sigma0=sigma0), args.ood_depth
    try:
        with np.errstate(over="raise"):
            results = evaluate_ood(rng, W, V, eta=eta, n=args.n, depth=ood_depth, shifts=shifts,
                                   batch=args.ood_batch, sigma0=sigma0)
    except FloatingPointError as exc:
        raise ValueError(f"training diverged: the trained layer (largest entries {np.max(np.abs(W)):.1e} in W, "
                         f"{np.max(np.abs(V)):.1e} in V) overflows when looped ({exc}); try a smaller --lr "
                         f"(it was {lr:g}); nothing was saved") from None
    os.makedirs(args.out, exist_ok=True)
    path = save_weights(os.path.join(args.out, s["name"]), W, V, eta=eta, kind=kind, depth=depth)
    lines += [f"saved to {path}", "", f"Looped layer vs NGD (eta = {eta:.4g}) on the same tasks, under shifts:",
              undefined_as_na(format_ood_table(results))]
    return "\n".join(lines)


def _check_converged(W, V, loss, lr: float) -> None:
    """Refuse the result of a diverged run: a loss or a weight that is not finite."""
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size or not (np.all(np.isfinite(W)) and np.all(np.isfinite(V))):
        when = f"the loss was {loss[bad[0]]} at iteration {bad[0] + 1}" if bad.size else "the weights overflowed"
        raise ValueError(f"training diverged ({when}); try a smaller --lr (it was {lr:g}); nothing was saved")


def tour_training_stage(rng: np.random.Generator, out_dir: str, quiet: bool = False) -> dict:
    r"""The tour's training stage: train one layer on one-step NGD targets briefly, check 100 loops against NGD.

    n = 20, d = 5, eta = 0.25, 500 Adam iterations (lr 3e-2, constant) of 128 fresh tasks with
    :math:`w_0 \sim N(0, I)` (a few seconds), then the trained layer is applied 100 times on 32 new
    tasks and compared with 100 NGD steps.

    Parameters
    ----------
    rng : np.random.Generator
    out_dir : str, folder for ``tour_layer.npz`` (created if missing)
    quiet : bool, print nothing

    Returns
    -------
    dict with ``loss_first``, ``loss_last``, ``distance`` (relative, to W*, V*), ``diff_100`` (largest
    normalized difference to NGD after 100 loops), ``cos_100`` (mean cosine to w*), ``seconds``, ``path``.
    """
    check_generator(rng)
    check_out_folder(out_dir, "out_dir", ["tour_layer.npz"])
    say = (lambda *a: None) if check_flag("quiet", quiet) else print
    start = time.perf_counter()
    n, d, eta = 20, 5, 0.25
    W, V, hist = train_one_step_layer(rng, n=n, d=d, eta=eta, iterations=500, batch=128, lr=3e-2, sigma0=1.0,
                                      schedule="constant", quiet=True)
    os.makedirs(out_dir, exist_ok=True)
    path = save_weights(os.path.join(out_dir, "tour_layer.npz"), W, V, eta=eta)
    res = evaluate_ood(rng, W, V, eta=eta, n=n, depth=100, shifts=[Shift("in distribution")], batch=32, n_test=200)
    t = res["in distribution"]
    out = {"loss_first": float(hist["loss"][0]), "loss_last": float(hist["loss"][-1]),
           "distance": float(hist["dist"][-1]), "diff_100": float(t["diff_max"][-1]),
           "cos_100": float(t["cos_tf"][-1]), "seconds": time.perf_counter() - start, "path": path}
    say(f"3. Training one layer by hand (n = {n}, d = {d}, eta = {eta}, Adam, 500 iterations on fresh tasks, "
        "zero start):")
    say(f"   loss {out['loss_first']:.2e} -> {out['loss_last']:.2e}; relative distance to (W*, V*) "
        f"{out['distance']:.1e}; saved to {path}")
    say(f"   trained layer looped 100 times vs 100 NGD steps: largest normalized difference {out['diff_100']:.1e}, "
        f"cosine to w* {out['cos_100']:.3f} ({out['seconds']:.1f} s)\n")
    return out
