"""2-D decision-line helpers and the margin fraction (ngdformer/boundaries.py)."""

import numpy as np
import pytest

import ngdformer as nf


def test_separator_segment_lies_on_the_line_with_the_right_length():
    w = np.array([[3.0, 4.0], [-1.0, 0.5]])
    seg = nf.separator_segment(w, 2.0)
    assert seg.shape == (2, 2, 2)
    assert np.allclose(np.einsum("bkd,bd->bk", seg, w), 0.0, atol=1e-14)
    assert np.allclose(np.linalg.norm(seg, axis=-1), 2.0)
    assert np.allclose(seg[:, 0], -seg[:, 1])


def test_separator_segment_rejects_zero_and_wrong_dimension():
    with pytest.raises(ValueError, match="zero"):
        nf.separator_segment(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="2 entries"):
        nf.separator_segment(np.ones(3), 1.0)


def test_decision_grid_scores_are_inner_products():
    xx, yy, s = nf.decision_grid(np.array([2.0, -1.0]), 3.0, num=7)
    assert s.shape == (7, 7)
    assert np.allclose(s, 2.0 * xx - yy)
    assert xx.min() == -3.0 and yy.max() == 3.0


def test_margin_fraction_is_one_at_max_margin_and_below_elsewhere():
    rng = np.random.default_rng(0)
    X, y, w_star = nf.sample_tasks(rng, 4, 20, 3, margin=0.1)
    w_mm = nf.max_margin(X, y)
    assert np.allclose(nf.margin_fraction(5.0 * w_mm, X, y, w_mm), 1.0, atol=1e-9)
    frac = nf.margin_fraction(w_star, X, y, w_mm)
    assert np.all(frac <= 1.0 + 1e-9) and np.all(frac > 0)
    traj = np.stack([w_star, w_mm])  # (T, B, d) broadcasts
    assert nf.margin_fraction(traj, X, y, w_mm).shape == (2, 4)
    with pytest.raises(ValueError, match="positive normalized margin"):
        nf.margin_fraction(w_star, X, y, -w_mm)
