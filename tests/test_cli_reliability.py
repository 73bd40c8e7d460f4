"""The command line refuses every bad option before any work, in one line naming it, with exit status 2.

Most tests run ``main(argv)`` in-process (fast); a few run ``python -m ngdformer`` in a subprocess to show
the real exit status.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import ngdformer
from ngdformer.__main__ import build_parser, main
from ngdformer.checks import MAX_DEPTH, MAX_ELEMENTS
from ngdformer.persistence import load_weights
from ngdformer.training import distance_to_construction

SMALL = ["--n", "8", "--d", "2", "--iterations", "5", "--batch", "4", "--ood-depth", "3", "--ood-batch", "2"]
BAD_REAL = ["-1", "nan", "inf", "1e300", "abc", ""]  # bad for every numeric option
BAD_INT = BAD_REAL + ["2.5", "1e3"]  # and for every integer option: a float, exponent notation

# option -> the bad values beyond BAD_INT / BAD_REAL (zero where it is not allowed, just above the range)
TOUR = {"--seed": (BAD_INT, [str(2**63)]), "--batch": (BAD_INT, ["0", str(MAX_ELEMENTS + 1)]),
        "--n": (BAD_INT, ["0", str(MAX_ELEMENTS + 1), "100000"]), "--d": (BAD_INT, ["0", "8193"]),
        "--eta": (BAD_REAL, ["0", "-0.5", "1000.5"]), "--eta-gd": (BAD_REAL, ["0", "1000.5"])}
TRAIN = {"--seed": (BAD_INT, [str(2**63)]), "--n": (BAD_INT, ["0", str(MAX_ELEMENTS + 1), "10000000"]),
         "--d": (BAD_INT, ["0", "8193"]), "--eta": (BAD_REAL, ["0", "1000.5"]),
         "--iterations": (BAD_INT, [str(MAX_DEPTH + 1)]), "--batch": (BAD_INT, ["0", "10000000"]),
         "--lr": (BAD_REAL, ["0", "10.5"]), "--momentum": (BAD_REAL, ["1", "1.5"]),
         "--sigma0": (BAD_REAL, ["1000.5"]), "--depth": (BAD_INT, ["0", str(MAX_DEPTH + 1), "100000"]),
         "--ood-depth": (BAD_INT, ["0", str(MAX_DEPTH + 1), str(MAX_DEPTH)]),
         "--ood-batch": (BAD_INT, ["0", "1000000"])}
CHOICE = {"--optimizer": ["adamw", ""], "--init": ["ones", ""], "--params": ["half", ""],
          "--objective": ["hinge", ""], "--schedule": ["linear", ""]}


def _cases(table):
    return [(option, value) for option, (common, extra) in table.items() for value in common + extra]


def _run(argv, capsys):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_refused(code, out, err, option, value):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line: no traceback, no usage block
    assert option in lines[0] and repr(value)[1:-1] in lines[0], lines[0]
    assert out == ""


@pytest.mark.parametrize("option, value", _cases(TOUR))
def test_every_bad_tour_option_is_refused_in_one_line(tmp_path, capsys, option, value):
    out_dir = tmp_path / "out"
    _assert_refused(*_run([option, value, "--no-train", "--out", str(out_dir)], capsys), option, value)
    assert not out_dir.exists()  # before any work


@pytest.mark.parametrize("option, value", _cases(TRAIN) + [(o, v) for o, vs in CHOICE.items() for v in vs])
def test_every_bad_train_option_is_refused_in_one_line(tmp_path, capsys, option, value):
    out_dir = tmp_path / "out"
    argv = ["train", *SMALL, option, value, "--out", str(out_dir)]
    if option in ("--ood-depth", "--ood-batch", "--depth"):  # their sizes are refused with the default d and batch
        argv = ["train", "--n", "8", "--iterations", "5", option, value, "--out", str(out_dir)]
    _assert_refused(*_run(argv, capsys), option, value)
    assert not out_dir.exists()  # before any work: no training ran, nothing was saved


@pytest.mark.parametrize("command", [["--no-train"], ["train", *SMALL]])
def test_bad_out_folders_are_refused(tmp_path, capsys, command):
    """Before: FileExistsError or FileNotFoundError tracebacks (after the training had run)."""
    file = tmp_path / "file"
    file.write_bytes(b"")
    (tmp_path / "taken" / "layer.npz").mkdir(parents=True)
    (tmp_path / "taken" / "tour.png").mkdir()
    for out, words in [("", "must name a folder"), (str(file), "existing file"), (str(file / "sub"), "is a file"),
                       (str(tmp_path / "taken"), "is a folder")]:
        code, stdout, err = _run([*command, "--out", out], capsys)
        _assert_refused(code, stdout, err, "--out", out)
        assert words in err
    assert file.read_bytes() == b""


@pytest.mark.parametrize("option", ["--seed 3", "--seed 0", "--batch 8", "--n 8", "--d 2", "--eta 0.5", "--eta-gd 0.5",
                                    "--out x", "--no-train", "--quiet"])
def test_tour_options_before_train_are_refused(tmp_path, capsys, option):
    """Before: ``--seed 3 train`` trained with seed 0, silently."""
    argv = [*option.split(), "train", *SMALL, "--out", str(tmp_path / "out"), "--quiet"]
    code, out, err = _run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{option} placed before 'train'" in err and "python -m ngdformer train" in err
    assert not (tmp_path / "out").exists()


def test_options_after_train_are_used(tmp_path, capsys):
    """--seed after train is honoured (seed 0 and seed 3 give two layers); the tour's own options are unknown there."""
    layers = []
    for seed in ("0", "3"):
        out = tmp_path / seed
        assert _run(["train", *SMALL, "--seed", seed, "--out", str(out), "--quiet"], capsys)[0] == 0
        layers.append(load_weights(out / "layer.npz").W)
    assert not np.array_equal(*layers)
    code, _, err = _run(["train", *SMALL, "--no-train"], capsys)
    assert code == 2 and "unrecognized arguments: --no-train" in err


def test_help_states_the_choice_and_the_ranges(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "An option placed before 'train' is refused, never ignored." in text
    assert "a number in (0, 1000]" in text and "an integer in [1, 8192]" in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "an integer in [0, 1000000]" in text and "a number in [0, 1)" in text


@pytest.mark.parametrize("extra, kind", [([], "one_step"), (["--depth", "2"], "looped")])
def test_zero_iterations_saves_the_start(tmp_path, capsys, extra, kind):
    """Before: an IndexError (the report read the first loss of an empty history)."""
    argv = ["train", *SMALL, *extra, "--iterations", "0", "--out", str(tmp_path)]
    code, out, err = _run(argv, capsys)
    assert code == 0 and err == "" and "no training (--iterations 0)" in out
    saved = load_weights(tmp_path / ("layer.npz" if kind == "one_step" else "looped_L2.npz"), kind=kind)
    if kind == "one_step":  # the zero start
        assert not saved.W.any() and not saved.V.any()
        assert distance_to_construction(saved.W, saved.V, 0.5) == 1.0
    else:  # the small random start
        assert 0 < np.max(np.abs(saved.W)) < 0.1


def test_no_nan_is_printed_as_a_result(tmp_path, capsys):
    """The margin fraction under label noise is undefined: shown as n/a with a note, not as nan."""
    code, out, _ = _run(["train", *SMALL, "--out", str(tmp_path)], capsys)
    assert code == 0 and not re.search(r"\bnan\b", out, re.I)
    assert "n/a / n/a" in out and "n/a: undefined" in out


@pytest.mark.parametrize("iterations, how", [("200", "overflows when looped"), ("300", "the loss was inf|non-finite")])
def test_a_diverging_run_is_reported_and_not_saved(tmp_path, capsys, iterations, how):
    """SGD at lr 10 diverges: weights ~1e256 that overflow in the evaluation (200 iterations), or an infinite
    loss or gradient (300). Before: overflow warnings, NaN in the table, exit status 0."""
    lr = "10"
    argv = ["train", "--n", "10", "--d", "3", "--iterations", iterations, "--optimizer", "sgd", "--lr", lr,
            "--ood-depth", "20", "--ood-batch", "8", "--out", str(tmp_path / "out"), "--quiet"]
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "training diverged" in err and re.search(how, err) and f"--lr (it was {lr})" in err
    assert not (tmp_path / "out" / "layer.npz").exists()


# ---- a few end-to-end runs, each a fresh interpreter ---------------------------------------------------------------


def _python_m(*argv, cwd):
    """``python -m ngdformer *argv`` in ``cwd``, importing the same package as this test process."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(ngdformer.__file__)))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "ngdformer", *argv], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.parametrize("argv, option", [(["--seed", "3", "train"], "--seed 3"),
                                          (["train", "--eta", "1e300"], "--eta"),
                                          (["train", "--ood-depth", "-1"], "--ood-depth"), (["--eta", "nan"], "--eta")])
def test_end_to_end_bad_options_exit_2(tmp_path, argv, option):
    proc = _python_m(*argv, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert option in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing ran: no out/ folder


def test_end_to_end_zero_iterations(tmp_path):
    proc = _python_m("train", *SMALL, "--iterations", "0", "--out", "w", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "" and "saved to" in proc.stdout
    assert load_weights(tmp_path / "w" / "layer.npz").kind == "one_step"
