"""Command line: ``python -m ngdformer`` runs the guided tour; ``python -m ngdformer train`` trains a layer."""

from __future__ import annotations

import argparse
import sys

from .train_cli import add_train_arguments, run_train
from .tour import run_tour


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ngdformer",
        description="Guided tour: one softmax attention layer with constructed weights performs one step of "
        "normalized gradient descent (NGD); looping it runs NGD toward the max-margin direction. "
        "Prints the construction error and a per-depth table (transformer vs NGD vs GD) and saves a figure.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the one random generator (default 0)")
    parser.add_argument("--batch", type=int, default=64, help="number of in-context tasks B (default 64)")
    parser.add_argument("--n", type=int, default=40, help="context size n, examples per task (default 40)")
    parser.add_argument("--d", type=int, default=10, help="input dimension d (default 10)")
    parser.add_argument("--eta", type=float, default=0.25,
                        help="NGD step size of the looped layer (default 0.25, where long loops stay exact)")
    parser.add_argument("--eta-gd", type=float, default=0.25, help="GD step size for comparison (default 0.25)")
    parser.add_argument("--out", default="out", help="folder for the figure (default ./out)")
    parser.add_argument("--no-train", action="store_true", help="skip the training stage")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    sub = parser.add_subparsers(dest="command", metavar="{train}")
    train = sub.add_parser("train", help="train an attention layer by hand, save it and report (see train --help)")
    add_train_arguments(train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return run_train(args)
    try:
        run_tour(seed=args.seed, batch=args.batch, n=args.n, d=args.d, eta=args.eta, eta_gd=args.eta_gd,
                 out=args.out, train=not args.no_train, quiet=args.quiet)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
