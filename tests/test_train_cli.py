"""The train command (add_train_arguments / run_train) and the tour's training stage."""

import argparse
import os

import numpy as np
import pytest

from ngdformer.persistence import load_weights
from ngdformer.train_cli import add_train_arguments, run_train, tour_training_stage


def _args(*argv):
    return add_train_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_train_one_step_saves_and_reports(tmp_path, capsys):
    out = str(tmp_path)
    argv = ["--n", "8", "--d", "3", "--iterations", "300", "--batch", "32", "--lr", "0.03", "--ood-depth", "20",
            "--ood-batch", "8", "--out", out]
    assert run_train(_args(*argv)) == 0
    text = capsys.readouterr().out
    assert "relative distance to (W*, V*)" in text and "in distribution" in text and "label noise" in text
    saved = load_weights(os.path.join(out, "layer.npz"), kind="one_step", d=3)
    assert saved.eta == 0.5
    first = saved.W.copy()
    assert run_train(_args(*argv, "--quiet")) == 0
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(load_weights(os.path.join(out, "layer.npz")).W, first)  # same seed, same layer


def test_train_looped_saves_and_reports(tmp_path, capsys):
    argv = ["--depth", "2", "--n", "8", "--d", "2", "--iterations", "20", "--batch", "4", "--ood-depth", "6",
            "--ood-batch", "4", "--out", str(tmp_path)]
    assert run_train(_args(*argv)) == 0
    text = capsys.readouterr().out
    assert "c1 = -tr(W12)/d" in text and "depth 6" in text
    saved = load_weights(os.path.join(str(tmp_path), "looped_L2.npz"), kind="looped")
    assert saved.depth == 2 and saved.eta > 0


def test_train_looped_ngd_objective(tmp_path, capsys):
    argv = ["--depth", "2", "--objective", "ngd", "--eta", "0.5", "--n", "8", "--d", "2", "--iterations", "20",
            "--batch", "4", "--ood-depth", "6", "--ood-batch", "4", "--out", str(tmp_path)]
    assert run_train(_args(*argv)) == 0
    assert "objective ngd" in capsys.readouterr().out
    args = _args(*argv, "--quiet")
    args.eta = -1.0  # a namespace built by hand is held to the parser's ranges
    assert run_train(args) == 2
    assert "argument --eta: must be a number in (0, 1000], got '-1.0'" in capsys.readouterr().err


def test_bad_input_exits_with_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # the parser refuses it
        _args("--n", "0", "--out", str(tmp_path), "--quiet")
    assert info.value.code == 2
    assert "argument --n: must be an integer in [1, 268435456], got '0'" in capsys.readouterr().err
    args = _args("--out", str(tmp_path), "--quiet")
    args.n = 0  # and so does run_train, for a namespace built by hand
    assert run_train(args) == 2
    assert "argument --n: must be an integer" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_tour_training_stage(tmp_path, capsys):
    res = tour_training_stage(np.random.default_rng(0), str(tmp_path))
    assert res["distance"] < 1e-6 and res["diff_100"] < 1e-6 and res["cos_100"] > 0.8
    assert res["seconds"] < 15
    assert "Training one layer by hand" in capsys.readouterr().out
    assert os.path.exists(res["path"])
