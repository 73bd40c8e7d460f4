"""Command line: ``python -m ngdformer`` runs the guided tour; ``python -m ngdformer train`` trains a layer.

The options before ``train`` are the tour's and those after it the training's: an option placed before
``train`` is refused with a message saying where it goes, never silently ignored. Every bad value is
refused before any work starts, in one line naming the option and the value, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from .tour import TOUR_FILES, TOUR_OPTIONS, run_tour, tour_sizes
from .train_cli import (add_train_arguments, check_options, check_out_folder, check_sizes, check_train_options,
                        cli_label, flag, option_type, run_train)

TOUR_DEFAULTS = {"seed": 0, "batch": 64, "n": 40, "d": 10, "eta": 0.25, "eta_gd": 0.25, "out": "out"}
_TOUR_HELP = {"seed": "seed of the one random generator (default 0)",
              "batch": "number of in-context tasks B (default 64)",
              "n": "context size n, examples per task (default 40)",
              "d": "input dimension d (default 10)",
              "eta": "NGD step size of the looped layer (default 0.25, where long loops stay exact)",
              "eta_gd": "GD step size for comparison (default 0.25)"}
_EPILOG = ("The options above are the tour's and go before any command; each command takes its own options "
           "after its name: python -m ngdformer train --seed 3 (see train --help). An option placed before "
           "'train' is refused, never ignored.")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr: ``prog: error: message`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m ngdformer [train]``: the tour's options, and the ``train`` subcommand.

    Returns
    -------
    parser : argparse.ArgumentParser; the tour's options are stored as ``tour_<name>`` (None when not given,
        so that one placed before ``train`` can be refused)
    """
    parser = _Parser(
        prog="python -m ngdformer",
        description="Guided tour: one softmax attention layer with constructed weights performs one step of "
        "normalized gradient descent (NGD); looping it runs NGD toward the max-margin direction. "
        "Prints the construction error and a per-depth table (transformer vs NGD vs GD) and saves a figure.",
        epilog=_EPILOG,
    )
    for dest, bound in TOUR_OPTIONS.items():
        parser.add_argument(flag(dest), dest=f"tour_{dest}", type=option_type(bound), default=None,
                            metavar=dest.upper(), help=f"{_TOUR_HELP[dest]}; {bound.describe()}")
    parser.add_argument("--out", dest="tour_out", default=None, metavar="OUT",
                        help="folder for the figure, created if missing (default ./out)")
    parser.add_argument("--no-train", dest="tour_no_train", action="store_true", help="skip the training stage")
    parser.add_argument("--quiet", dest="tour_quiet", action="store_true", help="print nothing")
    sub = parser.add_subparsers(dest="command", metavar="{train}", parser_class=_Parser)
    train = sub.add_parser("train", help="train an attention layer by hand, save it and report (see train --help)")
    add_train_arguments(train)
    parser.set_defaults(train_parser=train)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status (argparse exits with 2 on a bad option).

    Parameters
    ----------
    argv : list of str or None (None: ``sys.argv[1:]``)

    Returns
    -------
    code : int, 0 on success, 2 for a refused option or bad input, 1 if a file could not be written
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    given = [flag(name[len("tour_"):]) + ("" if value is True else f" {value}") for name, value in vars(args).items()
             if name.startswith("tour_") and value is not None and value is not False]  # 0 is a given --seed
    if args.command == "train":
        if given:
            parser.error(f"{', '.join(given)} placed before 'train': options before a command belong to the tour; "
                         f"put them after it, e.g. python -m ngdformer train {given[0]}")
        try:
            check_train_options(args)
        except ValueError as exc:
            args.train_parser.error(str(exc))
        return run_train(args)
    settings = {name: getattr(args, f"tour_{name}") for name in TOUR_DEFAULTS}
    settings = {name: TOUR_DEFAULTS[name] if value is None else value for name, value in settings.items()}
    try:
        check_options(settings, TOUR_OPTIONS)
        check_sizes(tour_sizes(batch=settings["batch"], n=settings["n"], d=settings["d"]))
        check_out_folder(settings["out"], cli_label("out"), TOUR_FILES)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        run_tour(**settings, train=not args.tour_no_train, quiet=args.tour_quiet)
    except ValueError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
