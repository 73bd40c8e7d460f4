"""The lecture script in examples/ runs, stays short, and writes its three figures."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "lecture_figures.py"


def test_lecture_figures_script(tmp_path):
    code = [ln for ln in SCRIPT.read_text().splitlines() if ln.strip()]
    assert len(code) <= 25, f"{SCRIPT.name} has {len(code)} non-blank lines; an instructor's script should fit 25"
    env = dict(os.environ, MPLBACKEND="Agg")
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], check=True, env=env, timeout=120)
    for name in ("margins.png", "construction.png", "trained_vs_ngd.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 300, name
        assert image[..., :3].std() > 0.05, f"{name} is blank"
