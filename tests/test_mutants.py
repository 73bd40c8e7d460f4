"""Independent checks of the math modules at the places a small edit would go unnoticed.

Each test takes its expected value from a hand computation, a closed form, a boundary stated in
a docstring or a second route (the same numbers widened to float64 by hand, a file written
member by member), not from the code path it checks.
"""

import io
import zipfile

import numpy as np
import pytest

import ngdformer as nf
from ngdformer import construction
from ngdformer.checks import MAX_DEPTH, MAX_ELEMENTS, check_depth, check_generator, check_positive, check_size
from ngdformer.gradcheck import assert_gradients_close, check_directions
from ngdformer.metrics import normalized_difference, relative_difference


# --- construction.py ------------------------------------------------------------------------------------


def test_looped_backward_refuses_caches_that_share_w_but_not_v():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((2, 4, 5))
    W = 0.5 * rng.standard_normal((4, 4))
    V1, V2 = 0.5 * rng.standard_normal((2, 4, 4))
    _, caches = nf.stack_forward(Z, [(W, V1), (W, V2)], 4)  # a stack whose layers differ only in V
    with pytest.raises(ValueError, match=r"caches\[1\] holds other weights"):
        nf.looped_backward(np.ones_like(Z), caches)


def test_a_loop_of_max_depth_is_accepted_and_applies_the_layer_max_depth_times(monkeypatch):
    calls = []

    def counting_layer(Z, W, V, n_context, **options):  # stands in for the layer: only counts applications
        calls.append(1)
        return Z, None

    monkeypatch.setattr(construction, "attention_forward", counting_layer)
    Z = np.zeros((2, 3))
    W = V = np.zeros((2, 2))
    nf.looped_forward(Z, W, V, 2, MAX_DEPTH)  # the documented limit itself is allowed
    assert len(calls) == 10**6
    with pytest.raises(ValueError, match="too large"):
        nf.looped_forward(Z, W, V, 2, MAX_DEPTH + 1)
    assert len(calls) == 10**6  # refused before the first application


# --- checks.py ------------------------------------------------------------------------------------------


def test_check_positive_boundaries_are_inclusive():
    assert check_positive("k", 2**63 - 1, integer=True) == 2**63 - 1  # the largest int64 is an integer we take
    with pytest.raises(ValueError, match="too large"):
        check_positive("k", 2**63, integer=True)
    assert check_positive("lr", 0.5, maximum=0.5) == 0.5  # "at most maximum"
    with pytest.raises(ValueError, match="too large"):
        check_positive("lr", 0.5000001, maximum=0.5)
    assert check_positive("sigma0", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="> 0"):
        check_positive("eta", 0.0)


def test_depth_limit_is_one_million_inclusive():
    assert check_depth(0) == 0
    assert check_depth(10**6) == 10**6  # "a million is already a quarter of an hour"
    with pytest.raises(ValueError, match="too large"):
        check_depth(10**6 + 1)
    assert MAX_DEPTH == 10**6


def test_size_limit_is_two_gib_of_float64_inclusive():
    assert 8 * MAX_ELEMENTS == 2 * 1024**3
    assert check_size("a", (2**14, 2**14)) == (2**14, 2**14)  # exactly 2**28 entries: allowed
    with pytest.raises(ValueError, match="entries"):
        check_size("a", (2**14, 2**14 + 1))  # one row more
    with pytest.raises(ValueError, match="entries"):
        check_size("a", (2, 2, 2**27 + 1))  # a product, not a sum, of the dimensions
    assert check_size("a", (0, 10**12)) == (0, 10**12)  # no entries at all


def test_check_generator_refuses_the_legacy_random_state():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        check_generator(np.random.RandomState(0))
    rng = np.random.default_rng(0)
    assert check_generator(rng) is rng


def test_a_float64_iterate_makes_the_context_float64():
    X = np.array([[1.0, 2.0]], dtype=np.float32)
    y = np.array([1.0], dtype=np.float32)
    w = np.array([1.0 / 3.0, 0.0])  # float64, not representable in float32
    w_out, X_out, y_out = nf.checks.check_context(w, X, y)
    assert (w_out.dtype, X_out.dtype, y_out.dtype) == (np.float64,) * 3
    assert w_out[0] == 1.0 / 3.0  # not rounded through float32
    w32 = w.astype(np.float32)
    assert all(a.dtype == np.float32 for a in nf.checks.check_context(w32, X, y))


def test_a_float32_upstream_gradient_into_a_float64_layer_gives_float64_gradients():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((2, 4, 5))
    W, V = 0.5 * rng.standard_normal((2, 4, 4))
    dout32 = rng.standard_normal(Z.shape).astype(np.float32)
    dout64 = dout32.astype(np.float64)  # the same numbers, exactly
    for backward, caches in ((nf.attention_backward, nf.attention_forward(Z, W, V, 4)[1]),
                             (nf.looped_backward, nf.looped_forward_with_cache(Z, W, V, 4, 2)[1])):
        got, want = backward(dout32, caches), backward(dout64, caches)
        for g, h in zip(got, want):
            assert g.dtype == np.float64
            np.testing.assert_array_equal(g, h)


# --- gradcheck.py, metrics.py ---------------------------------------------------------------------------


def test_a_gradient_exactly_at_the_tolerance_passes():
    assert_gradients_close(np.array([1e-6]), np.array([0.0]))  # |num - ana| = 1e-6 + 1e-5 * 0: allowed (<=)
    assert_gradients_close(np.array([1.0 + 1e-5]), np.array([1.0]))  # 1e-5 <= 1e-6 + 1e-5 * 1
    with pytest.raises(AssertionError):
        assert_gradients_close(np.array([1.1e-6]), np.array([0.0]))


def test_check_directions_uses_unit_directions():
    # In one dimension the only unit directions are +1 and -1, so <g, v> is +-g exactly.
    num, ana = check_directions(lambda x: 3.0 * x[0], np.array([0.7]), np.array([3.0]), np.random.default_rng(0),
                                directions=8)
    np.testing.assert_array_equal(np.abs(ana), 3.0)
    np.testing.assert_allclose(num, ana, rtol=1e-9)


def test_normalized_difference_of_same_opposite_and_orthogonal_directions():
    u = np.array([3.0, 4.0])
    assert normalized_difference(u, 2.0 * u) == pytest.approx(0.0, abs=1e-15)
    assert normalized_difference(u, -u) == pytest.approx(2.0)
    assert normalized_difference(u, np.array([-4.0, 3.0])) == pytest.approx(np.sqrt(2.0))


def test_relative_difference_of_a_huge_vector_from_a_small_reference():
    # ||u - v|| / ||v|| = (1e200 - 1e44) / 1e44 = 1e156: finite, though its square is not
    assert relative_difference(np.array([1e200, 0.0]), np.array([1e44, 0.0])) == pytest.approx(1e156, rel=1e-9)
    assert relative_difference(np.array([0.0, 1e-200]), np.array([0.0, 1e-40])) == pytest.approx(1.0)


def test_moving_average_with_the_window_as_long_as_the_series():
    np.testing.assert_allclose(nf.metrics.moving_average(np.array([1.0, 2.0, 6.0]), 3), [3.0])
    np.testing.assert_allclose(nf.metrics.moving_average(np.array([1.0, 2.0, 6.0]), 2), [1.5, 4.0])
    with pytest.raises(ValueError, match="longer than the series"):
        nf.metrics.moving_average(np.array([1.0, 2.0, 6.0]), 4)


# --- looped_training.py ---------------------------------------------------------------------------------


def test_looped_batch_starting_iterates_have_standard_deviation_sigma0():
    Z, _ = nf.looped_training.looped_batch(np.random.default_rng(0), 4000, 2, 1, "w_star", sigma0=2.0)
    w0 = Z[:, 1, -1]  # the query column holds [0; w0]
    np.testing.assert_array_equal(Z[:, 0, -1], 0.0)
    assert abs(np.std(w0) - 2.0) < 0.1  # 4000 draws: the standard error of the std is about 0.02
    assert abs(np.mean(w0)) < 0.1


# --- persistence.py -------------------------------------------------------------------------------------


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _write_layer_file(path, W, *, w_suffix=b""):
    """A weights file written member by member, so that W's member can be made to disagree with d = 1."""
    entries = dict(V=np.zeros((2, 2)), d=np.int64(1), eta=np.float64(0.5), kind=np.str_("one_step"),
                   depth=np.int64(1), format_version=np.int64(2))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W.npy", _npy(W) + w_suffix)
        for key, value in entries.items():
            zf.writestr(f"{key}.npy", _npy(value))


def test_load_weights_reads_a_hand_written_file(tmp_path):
    path = tmp_path / "ok.npz"
    _write_layer_file(path, np.array([[0.0, -1.0], [0.0, 0.0]]))
    saved = nf.load_weights(str(path))
    np.testing.assert_array_equal(saved.W, [[0.0, -1.0], [0.0, 0.0]])
    assert (saved.d, saved.eta, saved.kind, saved.depth) == (1, 0.5, "one_step", 1)


def test_a_w_larger_than_d_says_is_refused_from_its_header(tmp_path):
    path = tmp_path / "big.npz"
    _write_layer_file(path, np.zeros((64, 64)))  # d = 1 allows 4 entries, the header declares 4096
    with pytest.raises(ValueError, match=r"declares shape \(64, 64\) = 4096 entries"):
        nf.load_weights(str(path))


def test_a_member_with_bytes_after_its_array_is_refused(tmp_path):
    path = tmp_path / "tail.npz"
    _write_layer_file(path, np.zeros((2, 2)), w_suffix=b"\x00" * 8)
    with pytest.raises(ValueError, match="beyond its declared shape"):
        nf.load_weights(str(path))


# --- solvers.py -----------------------------------------------------------------------------------------


def test_kkt_primal_residual_is_the_margin_shortfall():
    X, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 1.0])
    a = np.array([1.0, 1.0])
    # margins (0.5, 2): the constraint m_i >= 1 is missed by 1 - 0.5 = 0.5
    assert nf.kkt_residuals(np.array([0.5, 2.0]), X, y, a)["primal"] == pytest.approx(0.5)
    # margins (1, 1): feasible, and w = sum_i a_i y_i x_i with a = (1, 1) is the max-margin pair
    res = nf.kkt_residuals(np.array([1.0, 1.0]), X, y, a)
    for key in ("primal", "dual", "stationarity", "slackness", "gap"):
        assert res[key] == pytest.approx(0.0, abs=1e-15), key
    # margins (-1, 1): a misclassified point misses by 2
    assert nf.kkt_residuals(np.array([-1.0, 1.0]), X, y, a)["primal"] == pytest.approx(2.0)


def test_float32_tokens_with_float64_weights_give_the_float64_layer():
    rng = np.random.default_rng(2)
    Z32 = rng.standard_normal((2, 4, 5)).astype(np.float32)
    W, V = rng.standard_normal((2, 4, 4))  # float64
    want = nf.attention_forward(Z32.astype(np.float64), W, V, 4)[0]  # the same numbers, widened by hand
    for layer in (lambda Z: nf.attention_forward(Z, W, V, 4)[0], lambda Z: nf.attention_naive(Z, W, V, 4),
                  lambda Z: nf.looped_forward(Z, W, V, 4, 1)):
        got = layer(Z32)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_certificate_refuses_a_dual_that_violates_complementary_slackness_alone():
    """A dual can satisfy every other KKT test and still break slackness term by term.

    Context x = 1, 2, 50 (d = 1, all labels +1): the max-margin pair is w = 1, a = (1, 0, 0).
    Moving dual mass a2 = 1e-3 onto the point with margin 2 and a3 = -a2/49 onto the point with
    margin 50 keeps w = 1 and |w|^2 = sum(a) exactly, with a3 inside the allowed negative round-off
    at tol = 1e-4; only a2 (m2 - 1) = 1e-3 > tol * sum(a) betrays it.
    """
    from ngdformer.solvers import _certified

    M = np.array([[1.0], [2.0], [50.0]])
    a2 = 1e-3
    bad = np.array([1.0 - a2 + a2 / 49, a2, -a2 / 49])
    assert bool(_certified(M, np.array([1.0, 0.0, 0.0]), 1e-4, np.array(1.0)))
    assert not bool(_certified(M, bad, 1e-4, np.array(1.0)))
