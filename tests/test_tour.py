"""The guided tour and the command line: deterministic, correct numbers, a figure on disk."""

import os

import numpy as np
import pytest

from ngdformer.__main__ import build_parser, main
from ngdformer.tour import run_tour


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tour"))
    return out, run_tour(seed=3, batch=8, n=12, d=4, depths=(0, 1, 10, 100, 300), out=out, train=False, quiet=True)


def test_tour_construction_is_exact(tour):
    _, res = tour
    assert res["construction_error"] < 1e-12


def test_tour_table_tracks_ngd_and_beats_gd(tour):
    _, res = tour
    t = res["table"]
    assert np.all(t["diff_max"] < 1e-12)  # looped transformer = NGD at eta = 0.25
    np.testing.assert_allclose(t["margin_tf"], t["margin_ngd"], atol=1e-10)
    assert t["margin_ngd"][-1] > 0.9  # NGD's normalized margin approaches the max-margin value
    assert t["margin_ngd"][-1] > t["margin_gd"][-1] + 0.1  # GD is far behind at the same depth
    assert np.all(t["acc_tf"][1:] > 0.6)


def test_tour_saves_figure(tour):
    out, _ = tour
    assert os.path.getsize(os.path.join(out, "tour.png")) > 10_000


def test_tour_is_deterministic(tmp_path):
    kwargs = dict(seed=5, batch=4, n=8, d=3, depths=(0, 1, 5), out=str(tmp_path), train=False, quiet=True)
    a, b = run_tour(**kwargs), run_tour(**kwargs)
    for key in a["table"]:
        np.testing.assert_array_equal(a["table"][key], b["table"][key])


def test_cli_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--seed", "--out", "--batch", "--n", "--d", "--eta", "--eta-gd", "--no-train", "train"):
        assert option in text


def test_cli_reports_bad_input(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["--n", "0", "--no-train", "--quiet", "--out", str(tmp_path)])
    assert info.value.code == 2 and "argument --n: must be an integer" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, match", [({"seed": -1}, "seed"), ({"eta": 1e300}, "eta"), ({"n": 10**6}, "too large"),
                                           ({"depths": (0, 5, 2)}, "depths"), ({"out": ""}, "out"),
                                           ({"quiet": "yes"}, "quiet")])
def test_run_tour_checks_every_setting_before_work(tmp_path, kwargs, match):
    settings = dict(batch=4, n=8, d=3, depths=(0, 1), out=str(tmp_path / "tour"), train=False, quiet=True) | kwargs
    with pytest.raises(ValueError, match=match):
        run_tour(**settings)
    assert not (tmp_path / "tour").exists()
