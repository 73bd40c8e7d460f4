"""save_weights / load_weights: bit-exact round trip, and a ValueError that says what is wrong for every bad file."""

import io
import zipfile

import numpy as np
import pytest

from ngdformer.persistence import FORMAT_VERSION, load_weights, save_weights


@pytest.fixture
def layer():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 6)), rng.standard_normal((6, 6)) * 1e-300  # subnormal-scale values too


@pytest.fixture
def saved(tmp_path, layer):
    path = tmp_path / "layer.npz"
    save_weights(path, *layer, eta=0.5, kind="looped", depth=7)
    return path


def test_round_trip_is_bit_exact(saved, layer):
    got = load_weights(saved, kind="looped", d=3)
    assert got.W.tobytes() == layer[0].tobytes() and got.V.tobytes() == layer[1].tobytes()
    assert (got.d, got.eta, got.kind, got.depth, got.format_version) == (3, 0.5, "looped", 7, FORMAT_VERSION)


def test_name_is_kept_exactly(tmp_path, layer):
    path = tmp_path / "weights.bin"
    save_weights(path, *layer, eta=1.0)
    assert path.exists() and load_weights(path).kind == "one_step"


def _rewrite(path, **changes):
    """Rewrite an archive with some entries replaced (None removes one)."""
    with np.load(path, allow_pickle=False) as data:
        entries = {k: data[k] for k in data.files}
    for key, value in changes.items():
        if value is None:
            entries.pop(key)
        else:
            entries[key] = value
    with open(path, "wb") as fh:
        np.savez(fh, **entries)


@pytest.mark.parametrize("changes, match", [
    ({"W": None}, "missing entries"),
    ({"format_version": np.int64(99)}, "format_version 99"),
    ({"kind": np.str_("transformer")}, "kind must be"),
    ({"d": np.int64(4)}, "d = 4"),
    ({"W": np.zeros((4, 4))}, "both be"),
    ({"V": np.full((6, 6), np.nan)}, "non-finite"),
    ({"W": np.zeros((6, 6), dtype=np.float32)}, "float64"),
    ({"eta": np.float64(-1.0)}, "eta"),
    ({"eta": np.array([0.5, 0.5])}, "'eta' should be a scalar"),
    ({"depth": np.float64(2.0)}, "'depth' should be a scalar"),
])
def test_mismatched_contents(saved, changes, match):
    _rewrite(saved, **changes)
    with pytest.raises(ValueError, match=match):
        load_weights(saved)


def test_expected_kind_and_dimension(saved):
    with pytest.raises(ValueError, match="'looped' model, expected 'one_step'"):
        load_weights(saved, kind="one_step")
    with pytest.raises(ValueError, match="d = 3, expected d = 5"):
        load_weights(saved, d=5)


def test_truncated_file(saved):
    raw = saved.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10, 5):
        saved.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="truncated or corrupted"):
            load_weights(saved)


def test_corrupted_bytes(saved):
    raw = bytearray(saved.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo("W.npy")
    pos = info.header_offset + 30 + len(info.filename) + 200  # inside W's data
    raw[pos] ^= 0xFF
    saved.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="truncated or corrupted.*CRC"):
        load_weights(saved)


@pytest.mark.parametrize("content, match", [(b"", "empty"), (b"hello, not an archive", "not an .npz"),
                                            (b"\x93NUMPY garbage", "single .npy")])
def test_not_an_archive(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_weights(path)


def test_single_npy_and_pickled_object(tmp_path):
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy"):
        load_weights(npy)
    obj = tmp_path / "obj.npz"
    with open(obj, "wb") as fh:
        np.savez(fh, W=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a valid ngdformer weights file"):
        load_weights(obj)


def test_missing_file_and_bad_arguments(tmp_path, layer):
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="eta"):
        save_weights(tmp_path / "x.npz", *layer, eta=0.0)
    with pytest.raises(ValueError, match="kind"):
        save_weights(tmp_path / "x.npz", *layer, eta=0.5, kind="other")
    with pytest.raises(ValueError, match="both be"):
        save_weights(tmp_path / "x.npz", np.zeros((3, 3)), np.zeros((3, 3)), eta=0.5)


def test_version_1_files_with_loops_still_load(saved):
    """Version 1 called the depth "loops"; such files load, with the value as ``depth``."""
    entries = dict(np.load(saved, allow_pickle=False))
    entries["loops"] = entries.pop("depth")
    entries["format_version"] = np.int64(1)
    with open(saved, "wb") as fh:
        np.savez(fh, **entries)
    got = load_weights(saved)
    assert got.depth == 7 and got.format_version == 1
