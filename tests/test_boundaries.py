"""2-D decision-line helpers and the margin fraction (ngdformer/boundaries.py)."""

import warnings

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


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1.0, 1e200, 1e300])
def test_separator_segment_at_any_magnitude_without_warnings(scale):
    w = scale * np.array([[3.0, 4.0], [-1.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seg = nf.separator_segment(w, 2.0)
    np.testing.assert_allclose(seg, nf.separator_segment(w / scale, 2.0), rtol=1e-15)


def test_decision_grid_refuses_sizes_and_scores_beyond_the_limits():
    with pytest.raises(ValueError, match=r"num = 100000 is too large: the limit is 16384"):
        nf.decision_grid(np.ones(2), 1.0, num=10**5)
    with pytest.raises(ValueError, match=r"w = \[1e\+200, 1e\+200\] and lim = 1e\+200 are too large"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            nf.decision_grid(np.array([1e200, 1e200]), 1e200)
    for num, match in ((True, "num must be an integer"), (1, "num must be >= 2"), (2.0, "num must be an integer")):
        with pytest.raises(ValueError, match=match):
            nf.decision_grid(np.ones(2), 1.0, num=num)
    with pytest.raises(ValueError, match=r"lim must be finite and > 0, got nan"):
        nf.decision_grid(np.ones(2), np.nan)


def test_margin_fraction_names_the_reference_and_never_overflows():
    X, y, w_star = nf.sample_tasks(np.random.default_rng(1), 3, 10, 2, margin=0.1)
    with pytest.raises(ValueError, match=r"^w_ref contains a non-finite value"):
        nf.margin_fraction(w_star, X, y, np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match=r"^w_ref has shape \(2, 2\) but X has shape \(3, 10, 2\)"):
        nf.margin_fraction(w_star, X, y, w_star[:2])
    with pytest.raises(ValueError, match=r"^w_ref has shape \(3, 3\)"):
        nf.margin_fraction(w_star, X, y, np.ones((3, 3)))
    Xs, ys = np.array([[[1.0, 0.0], [1.0, 1.0]]]), np.ones((1, 2))
    w_ref = np.array([[1e-310, 1.0]])  # margin 1e-310 > 0 on the first point: a valid but tiny reference
    with pytest.raises(ValueError, match=r"w_ref's normalized margin \(smallest 1e-310\) is too small"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            nf.margin_fraction(np.array([[1.0, 0.0]]), Xs, ys, w_ref)  # 1 / 1e-310 overflows
