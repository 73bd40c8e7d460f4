"""``python -m ngdformer train``: train a layer by hand, save it, and report (chapters 06-07).

:func:`add_train_arguments` fills an ``argparse`` (sub)parser, :func:`run_train` runs it, and
:func:`tour_training_stage` is the short training stage of the guided tour. Deterministic
from the seed: one ``np.random.Generator`` drives training and evaluation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from .looped_training import OBJECTIVES, train_looped
from .ood import Shift, default_shifts, evaluate_ood, format_ood_table
from .persistence import save_weights
from .training import block, block_scales, off_identity, train_one_step_layer


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` options to ``parser`` (every option has a default; see ``train --help``)."""
    parser.description = ("Train one softmax attention layer by hand (NumPy gradients, hand-written Adam/SGD): by "
                          "default on one-step NGD supervision, which recovers the construction W*, V*; with "
                          "--depth L, a looped model of depth L from a small random start on an end task. Saves the weights "
                          "(.npz) and prints the final numbers and an out-of-distribution table against NGD.")
    add = parser.add_argument
    add("--seed", type=int, default=0, help="seed of the one random generator (default 0)")
    add("--n", type=int, default=40, help="context size n (default 40)")
    add("--d", type=int, default=10, help="input dimension d (default 10)")
    add("--eta", type=float, default=0.5,
        help="NGD step size the one-step layer is taught, and of the target of --objective ngd (default 0.5)")
    add("--iterations", type=int, default=None, help="optimizer steps (default 500; 3000 with --depth)")
    add("--batch", type=int, default=None, help="tasks per iteration (default 32; 64 with --depth)")
    add("--lr", type=float, default=None,
        help="learning rate (default 2e-2 for adam one-step, 1e-2 for adam with --depth, 0.5 for sgd)")
    add("--optimizer", choices=("adam", "sgd"), default="adam", help="hand-written optimizer (default adam)")
    add("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    add("--init", choices=("zeros", "random"), default="zeros", help="one-step start (default zeros)")
    add("--params", choices=("full", "blocks"), default="full",
        help="one-step: train full W, V or only the blocks W12, V11, V21 (default full)")
    add("--sigma0", type=float, default=None, help="scale of w0 (default 1/sqrt(d) one-step, 0 with --depth)")
    add("--depth", type=int, default=None, metavar="L",
        help="train a looped model of depth L from scratch instead of one layer on one-step targets")
    add("--objective", choices=OBJECTIVES, default="w_star",
        help="end task with --depth: w_star, logistic, or ngd (match L NGD steps of size --eta) (default w_star)")
    add("--schedule", choices=("cosine", "constant"), default="cosine",
        help="learning-rate schedule: cosine decay to 0 over the run, or constant (default cosine)")
    add("--ood-depth", type=int, default=100, help="depth of the out-of-distribution evaluation (default 100)")
    add("--ood-batch", type=int, default=64, help="tasks per shift in the evaluation (default 64)")
    add("--out", default="out", help="folder for the weights file (default ./out)")
    add("--quiet", action="store_true", help="print nothing")
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Train, save to ``<out>/layer.npz`` (or ``looped_L<L>.npz``), print a report; return an exit code (0, or 2 on bad input).

    Parameters
    ----------
    args : argparse.Namespace from a parser filled by :func:`add_train_arguments`

    Returns
    -------
    code : int, 0 on success, 2 if an argument was refused (the message goes to stderr)
    """
    try:
        report = _train_and_report(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(report)
    return 0


def _train_and_report(args) -> str:
    rng = np.random.default_rng(args.seed)
    looped = args.depth is not None
    iterations = args.iterations if args.iterations is not None else (3000 if looped else 500)
    batch = args.batch if args.batch is not None else (64 if looped else 32)
    lr = args.lr if args.lr is not None else ((1e-2 if looped else 2e-2) if args.optimizer == "adam" else 0.5)
    sigma0 = args.sigma0 if args.sigma0 is not None else (0.0 if looped else 1.0 / np.sqrt(args.d))
    common = dict(n=args.n, d=args.d, iterations=iterations, batch=batch, lr=lr, optimizer=args.optimizer,
                  momentum=args.momentum, sigma0=sigma0, schedule=args.schedule, quiet=args.quiet)
    if looped:
        W, V, hist = train_looped(rng, depth=args.depth, objective=args.objective, eta=args.eta, **common)
        c1, c2 = block_scales(W, V)
        eta = c1 * c2 if c1 * c2 > 0 else args.eta  # W12 = -c1 I, V21 = c2 I is NGD with step c1 c2 on c1 w
        kind, depth, name = "looped", args.depth, f"looped_L{args.depth}.npz"
        lines = [f"looped model, L = {depth}, objective {args.objective}: {iterations} iterations in "
                 f"{hist['seconds']:.1f} s, "
                 f"loss {hist['loss'][0]:.3e} -> {np.mean(hist['loss'][-50:]):.3e} (mean of the last 50)",
                 f"c1 = -tr(W12)/d = {c1:.4f}, c2 = tr(V21)/d = {c2:.4f}; off-identity ratio "
                 f"W12 {off_identity(block(W, '12')):.3f}, V21 {off_identity(block(V, '21')):.3f}",
                 f"compared with NGD at eta = c1 c2 = {eta:.4f} (directions only: the iterate is NGD's / c1)"]
        shifts = default_shifts(args.n, args.d, depth=depth, long_depth=args.ood_depth, sigma0=sigma0)
        ood_depth = depth
    else:
        W, V, hist = train_one_step_layer(rng, eta=args.eta, init=args.init, params=args.params, **common)
        eta, kind, depth, name = args.eta, "one_step", 1, "layer.npz"
        lines = [f"one-step layer, eta = {eta}: {iterations} iterations in {hist['seconds']:.1f} s, "
                 f"loss {hist['loss'][0]:.3e} -> {hist['loss'][-1]:.3e}",
                 f"relative distance to (W*, V*): {hist['dist'][-1]:.3e} (excited blocks {hist['dist_excited'][-1]:.3e});"
                 f" c1 = {hist['c1'][-1]:.6f}, c2 = {hist['c2'][-1]:.6f}"]
        shifts, ood_depth = default_shifts(args.n, args.d, depth=args.ood_depth, sigma0=sigma0), args.ood_depth
    os.makedirs(args.out, exist_ok=True)
    path = save_weights(os.path.join(args.out, name), W, V, eta=eta, kind=kind, depth=depth)
    results = evaluate_ood(rng, W, V, eta=eta, n=args.n, depth=ood_depth, shifts=shifts, batch=args.ood_batch,
                           sigma0=sigma0)
    lines += [f"saved to {path}", "", f"Looped layer vs NGD (eta = {eta:.4g}) on the same tasks, under shifts:",
              format_ood_table(results)]
    return "\n".join(lines)


def tour_training_stage(rng: np.random.Generator, out_dir: str, quiet: bool = False) -> dict:
    r"""The tour's training stage: train one layer on one-step NGD targets briefly, check 100 loops against NGD.

    n = 20, d = 5, eta = 0.25, 500 Adam iterations (lr 3e-2, constant) of 128 fresh tasks with
    :math:`w_0 \sim N(0, I)` (a few seconds), then the trained layer is applied 100 times on 32 new
    tasks and compared with 100 NGD steps.

    Parameters
    ----------
    rng : np.random.Generator
    out_dir : str, folder for ``tour_layer.npz``
    quiet : bool, print nothing

    Returns
    -------
    dict with ``loss_first``, ``loss_last``, ``distance`` (relative, to W*, V*), ``diff_100`` (largest
    normalized difference to NGD after 100 loops), ``cos_100`` (mean cosine to w*), ``seconds``, ``path``.
    """
    say = (lambda *a: None) if quiet else print
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
