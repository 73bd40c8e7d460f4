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
from .training import block, coefficients, off_identity, train_one_step_layer


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` options to ``parser`` (every option has a default; see ``train --help``)."""
    parser.description = ("Train one softmax attention layer by hand (NumPy gradients, hand-written Adam/SGD): by "
                          "default on one-step NGD supervision, which recovers the construction W*, V*; with "
                          "--looped L, a looped model from a small random start on an end task. Saves the weights "
                          "(.npz) and prints the final numbers and an out-of-distribution table against NGD.")
    add = parser.add_argument
    add("--seed", type=int, default=0, help="seed of the one random generator (default 0)")
    add("--n", type=int, default=40, help="context size n (default 40)")
    add("--d", type=int, default=10, help="input dimension d (default 10)")
    add("--eta", type=float, default=0.5,
        help="NGD step size the one-step layer is taught, and of the target of --objective ngd (default 0.5)")
    add("--steps", type=int, default=None, help="optimizer steps (default 1000; 3000 with --looped)")
    add("--batch", type=int, default=None, help="tasks per step (default 256; 64 with --looped)")
    add("--lr", type=float, default=None, help="learning rate (default 1e-2 for adam, 0.5 for sgd)")
    add("--optimizer", choices=("adam", "sgd"), default="adam", help="hand-written optimizer (default adam)")
    add("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    add("--init", choices=("zeros", "random"), default="zeros", help="one-step start (default zeros)")
    add("--params", choices=("full", "blocks"), default="full",
        help="one-step: train full W, V or only the blocks W12, V11, V21 (default full)")
    add("--sigma0", type=float, default=None, help="scale of w0 (default 1 one-step, 0 looped)")
    add("--looped", type=int, default=None, metavar="L", help="train an L-loop model from scratch instead")
    add("--objective", choices=OBJECTIVES, default="w_star",
        help="end task of --looped: w_star, logistic, or ngd (match L NGD steps of size --eta) (default w_star)")
    add("--schedule", choices=("cosine", "constant"), default="cosine",
        help="learning-rate schedule of --looped (default cosine)")
    add("--ood-loops", type=int, default=100, help="depth of the out-of-distribution evaluation (default 100)")
    add("--ood-batch", type=int, default=64, help="tasks per shift in the evaluation (default 64)")
    add("--out", default="out", help="folder for the weights file (default ./out)")
    add("--quiet", action="store_true", help="print nothing")
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Train, save to ``<out>/layer.npz`` (or ``looped_L<L>.npz``), print a report; return an exit code (0, or 2 on bad input)."""
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
    looped = args.looped is not None
    steps = args.steps if args.steps is not None else (3000 if looped else 1000)
    batch = args.batch if args.batch is not None else (64 if looped else 256)
    lr = args.lr if args.lr is not None else (1e-2 if args.optimizer == "adam" else 0.5)
    sigma0 = args.sigma0 if args.sigma0 is not None else (0.0 if looped else 1.0)
    common = dict(n=args.n, d=args.d, steps=steps, batch=batch, lr=lr, optimizer=args.optimizer,
                  momentum=args.momentum, sigma0=sigma0, quiet=args.quiet)
    if looped:
        W, V, hist = train_looped(rng, loops=args.looped, objective=args.objective, schedule=args.schedule,
                                  eta=args.eta, **common)
        c1, c2 = coefficients(W, V)
        eta = c1 * c2 if c1 * c2 > 0 else args.eta  # W12 = -c1 I, V21 = c2 I is NGD with step c1 c2 on c1 w
        kind, loops, name = "looped", args.looped, f"looped_L{args.looped}.npz"
        lines = [f"looped model, L = {loops}, objective {args.objective}: {steps} steps in {hist['seconds']:.1f} s, "
                 f"loss {hist['loss'][0]:.3e} -> {np.mean(hist['loss'][-50:]):.3e} (mean of the last 50)",
                 f"c1 = -tr(W12)/d = {c1:.4f}, c2 = tr(V21)/d = {c2:.4f}; off-identity ratio "
                 f"W12 {off_identity(block(W, '12')):.3f}, V21 {off_identity(block(V, '21')):.3f}",
                 f"compared with NGD at eta = c1 c2 = {eta:.4f} (directions only: the iterate is NGD's / c1)"]
        shifts = default_shifts(args.n, args.d, loops=loops, long_loops=args.ood_loops, sigma0=sigma0)
        ood_loops = loops
    else:
        W, V, hist = train_one_step_layer(rng, eta=args.eta, init=args.init, params=args.params, **common)
        eta, kind, loops, name = args.eta, "one_step", 1, "layer.npz"
        lines = [f"one-step layer, eta = {eta}: {steps} steps in {hist['seconds']:.1f} s, "
                 f"loss {hist['loss'][0]:.3e} -> {hist['loss'][-1]:.3e}",
                 f"relative distance to (W*, V*): {hist['dist'][-1]:.3e} (excited blocks {hist['dist_excited'][-1]:.3e});"
                 f" c1 = {hist['c1'][-1]:.6f}, c2 = {hist['c2'][-1]:.6f}"]
        shifts, ood_loops = default_shifts(args.n, args.d, loops=args.ood_loops, sigma0=sigma0), args.ood_loops
    os.makedirs(args.out, exist_ok=True)
    path = save_weights(os.path.join(args.out, name), W, V, eta=eta, kind=kind, loops=loops)
    results = evaluate_ood(rng, W, V, eta=eta, n=args.n, loops=ood_loops, shifts=shifts, batch=args.ood_batch,
                           sigma0=sigma0)
    lines += [f"saved to {path}", "", f"Looped layer vs NGD (eta = {eta:.4g}) on the same tasks, under shifts:",
              format_ood_table(results)]
    return "\n".join(lines)


def tour_training_stage(rng: np.random.Generator, out_dir: str, quiet: bool = False) -> dict:
    """The tour's training stage: train one layer on one-step NGD targets briefly, check 100 loops against NGD.

    n = 20, d = 5, eta = 0.25, 500 Adam steps (lr 3e-2) of 128 fresh tasks (a few seconds), then the trained
    layer is looped 100 times on 32 new tasks and compared with 100 NGD steps.

    Returns
    -------
    dict with ``loss_first``, ``loss_last``, ``distance`` (relative, to W*, V*), ``diff_100`` (largest
    normalized difference to NGD after 100 loops), ``cos_100`` (mean cosine to w*), ``seconds``, ``path``.
    """
    say = (lambda *a: None) if quiet else print
    start = time.perf_counter()
    n, d, eta = 20, 5, 0.25
    W, V, hist = train_one_step_layer(rng, n=n, d=d, eta=eta, steps=500, batch=128, lr=3e-2, quiet=True)
    os.makedirs(out_dir, exist_ok=True)
    path = save_weights(os.path.join(out_dir, "tour_layer.npz"), W, V, eta=eta)
    res = evaluate_ood(rng, W, V, eta=eta, n=n, loops=100, shifts=[Shift("in distribution")], batch=32, n_test=200)
    t = res["in distribution"]
    out = {"loss_first": float(hist["loss"][0]), "loss_last": float(hist["loss"][-1]),
           "distance": float(hist["dist"][-1]), "diff_100": float(t["diff_max"][-1]),
           "cos_100": float(t["cos_tf"][-1]), "seconds": time.perf_counter() - start, "path": path}
    say(f"3. Training one layer by hand (n = {n}, d = {d}, eta = {eta}, Adam, 500 steps of fresh tasks, zero start):")
    say(f"   loss {out['loss_first']:.2e} -> {out['loss_last']:.2e}; relative distance to (W*, V*) "
        f"{out['distance']:.1e}; saved to {path}")
    say(f"   trained layer looped 100 times vs 100 NGD steps: largest normalized difference {out['diff_100']:.1e}, "
        f"cosine to w* {out['cos_100']:.3f} ({out['seconds']:.1f} s)\n")
    return out
