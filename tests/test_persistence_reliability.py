"""save_weights / load_weights on hostile input: every bad file is a ValueError naming the path, never another error.

Files are built by hand with ``zipfile`` and ``numpy.lib.format``: a header declaring a huge shape, flipped
bytes in a compressed member, an encrypted flag, an unknown compression method, a member that is not .npy,
every truncation and every single flipped byte of a real file.
"""

import io
import os
import struct
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from ngdformer.checks import MAX_DEPTH
from ngdformer.persistence import load_weights, save_weights

D = 6  # the layer of the tests is (6, 6), d = 3


@pytest.fixture
def layer():
    rng = np.random.default_rng(1)
    return rng.standard_normal((D, D)), rng.standard_normal((D, D))


def _entries(**changes):
    """The entries of a valid version-2 file, with some replaced (None removes one)."""
    rng = np.random.default_rng(1)
    entries = {"W": rng.standard_normal((D, D)), "V": rng.standard_normal((D, D)), "d": np.int64(D // 2),
               "eta": np.float64(0.5), "kind": np.str_("looped"), "depth": np.int64(7),
               "format_version": np.int64(2)}
    entries.update(changes)
    return {k: v for k, v in entries.items() if v is not None}


def _npy(value) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def _header_only(shape, descr="<f8") -> bytes:
    """An .npy header declaring ``shape`` and ``descr``, with no data after it."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})  # magic too
    return buf.getvalue()


def _write_zip(path, members: dict, compression=zipfile.ZIP_STORED):
    """An archive holding exactly ``members`` (name -> raw bytes)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return path


def _npz(path, compression=zipfile.ZIP_STORED, **changes):
    return _write_zip(path, {f"{k}.npy": _npy(v) for k, v in _entries(**changes).items()}, compression)


def _patch_member(path, member: str, local_field: int, central_field: int, value: int):
    """Overwrite a 2-byte field of ``member`` in its local header and in the central directory."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        local = zf.getinfo(member).header_offset
    struct.pack_into("<H", raw, local + local_field, value)
    start = 0
    while (start := raw.find(b"PK\x01\x02", start)) >= 0:  # central directory entries
        name_len = struct.unpack_from("<H", raw, start + 28)[0]
        if raw[start + 46:start + 46 + name_len] == member.encode():
            struct.pack_into("<H", raw, start + central_field, value)
        start += 4
    path.write_bytes(bytes(raw))
    return path


def _assert_refused(path, match=""):
    with pytest.raises(ValueError, match=match) as info:
        load_weights(path)
    assert str(path) in str(info.value)
    return str(info.value)


# ---- sizes declared in a header are checked before anything is allocated -------------------------------------------


@pytest.mark.parametrize("shape", [(10**6, 10**6), (2**40,), (D, D, 10**9)])
def test_huge_declared_shape_is_refused_before_reading(tmp_path, shape):
    members = {f"{k}.npy": _npy(v) for k, v in _entries().items()}
    members["W.npy"] = _header_only(shape)
    path = _write_zip(tmp_path / "huge.npz", members)
    assert path.stat().st_size < 2000  # a small file; np.load would try to allocate terabytes (MemoryError)
    _assert_refused(path, "declares shape")


def test_huge_d_with_a_matching_huge_shape_is_refused(tmp_path):
    members = {f"{k}.npy": _npy(v) for k, v in _entries(d=np.int64(10**9)).items()}
    members["W.npy"] = members["V.npy"] = _header_only((2 * 10**9, 2 * 10**9))
    path = _write_zip(tmp_path / "huge_d.npz", members)
    _assert_refused(path, "entry 'd' is 1000000000")


def test_huge_string_kind_is_refused_before_reading(tmp_path):
    members = {f"{k}.npy": _npy(v) for k, v in _entries().items()}
    members["kind.npy"] = _header_only((), descr="<U100000000")  # 400 MB of text declared in ~130 bytes
    _assert_refused(_write_zip(tmp_path / "kind.npz", members), "'kind' should be a scalar")


# ---- damaged archives: every failure of zipfile or zlib becomes a ValueError naming the path -----------------------


def test_flipped_bytes_in_a_compressed_member(tmp_path):
    path = _npz(tmp_path / "c.npz", zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo("W.npy")
    start = info.header_offset + 30 + len(info.filename)
    for k in range(start + 5, start + 25):  # inside W's deflate stream (zlib.error on the old loader)
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))
    _assert_refused(path, "truncated or corrupted")


def test_encrypted_member(tmp_path):
    path = _patch_member(_npz(tmp_path / "e.npz"), "W.npy", 6, 8, 0x1)  # general-purpose flag bit 0: encrypted
    _assert_refused(path, "'W.npy' is encrypted")


def test_unsupported_compression_method(tmp_path):
    path = _patch_member(_npz(tmp_path / "m.npz"), "W.npy", 8, 10, 99)  # 99: AES, which zipfile cannot read
    _assert_refused(path, "compression method 99")


@pytest.mark.parametrize("name, raw", [("W", b"not an npy array"), ("W.npy", b"not an npy array"),
                                       ("notes.txt", b"hello")])
def test_member_that_is_not_npy(tmp_path, name, raw):
    """np.load hands back the raw bytes of such a member (AttributeError further on in the old loader)."""
    members = {f"{k}.npy": _npy(v) for k, v in _entries().items()}
    members.pop(f"{name}.npy" if name == "W" else name, None)
    members[name] = raw
    _assert_refused(_write_zip(tmp_path / "x.npz", members), "not an .npy|magic")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_every_truncation_is_a_value_error(tmp_path, compression):
    path = _npz(tmp_path / "t.npz", compression)
    raw = path.read_bytes()
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=str(path) if cut else "empty"):
            load_weights(path)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_every_flipped_byte_is_refused_or_harmless(tmp_path, compression):
    """Flip each byte of a real file in turn: the load fails with a ValueError or returns the original layer."""
    path = _npz(tmp_path / "f.npz", compression)
    raw = path.read_bytes()
    good = load_weights(path)
    refused = 0
    for k in range(len(raw)):
        bad = bytearray(raw)
        bad[k] ^= 0x5A
        path.write_bytes(bytes(bad))
        try:
            got = load_weights(path)
        except ValueError as exc:
            assert str(path) in str(exc) or "empty" in str(exc) or "archive" in str(exc)
            refused += 1
            continue
        assert got.W.tobytes() == good.W.tobytes() and got.V.tobytes() == good.V.tobytes()
        assert got[2:] == good[2:]
    assert refused > len(raw) // 2  # most bytes matter (the data is protected by the CRC)


# ---- what the format accepts that np.load writes -------------------------------------------------------------------


def test_compressed_fortran_and_big_endian_files_load_exactly(tmp_path, layer):
    W, V = layer
    ref = tmp_path / "ref.npz"
    save_weights(ref, W.T, V, eta=0.5)  # W.T is Fortran-ordered: np.save writes it so
    got = load_weights(ref)
    assert got.W.tobytes() == np.ascontiguousarray(W.T).tobytes() and got.W.flags.writeable
    comp = _npz(tmp_path / "comp.npz", zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(load_weights(comp).W, _entries()["W"])
    big = _npz(tmp_path / "big.npz", W=_entries()["W"].astype(">f8"))
    got = load_weights(big)
    assert got.W.dtype == np.float64 and got.W.tobytes() == _entries()["W"].tobytes()


@pytest.mark.parametrize("dtype", [np.complex128, np.float32, np.int64, "<U3", bool])
def test_weights_that_are_not_float64_are_refused_on_load(tmp_path, dtype):
    W = np.ones((D, D), dtype=dtype) if dtype != "<U3" else np.full((D, D), "1.0")
    _assert_refused(_npz(tmp_path / "w.npz", W=W), "W has dtype")


# ---- arguments of save_weights / load_weights ------------------------------------------------------------------------


def test_file_descriptors_and_open_files_are_refused(tmp_path, layer):
    fd = os.open(tmp_path / "fd.npz", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(TypeError, match="file descriptors are not accepted"):
            save_weights(fd, *layer, eta=0.5)
        with pytest.raises(TypeError, match="file descriptors are not accepted"):
            load_weights(fd)
        os.fstat(fd)  # the caller's descriptor is still open
        assert os.path.getsize(tmp_path / "fd.npz") == 0  # and nothing was written to it
    finally:
        os.close(fd)
    for path in (b"layer.npz", None, 3.0, io.BytesIO()):
        with pytest.raises(TypeError, match="path must"):
            save_weights(path, *layer, eta=0.5)
        with pytest.raises(TypeError, match="path must"):
            load_weights(path)


@pytest.mark.parametrize("make", [lambda W: W + 1j, lambda W: W.astype(str), lambda W: W.astype(object)])
def test_non_real_weights_are_refused_on_save(tmp_path, layer, make):
    path = tmp_path / "c.npz"
    with pytest.raises(TypeError, match="W must be real"):
        save_weights(path, make(layer[0]), layer[1], eta=0.5)
    assert not path.exists()


@pytest.mark.parametrize("depth", [0, -1, 2.5, True, MAX_DEPTH + 1, np.float64(3.0)])
def test_bad_depth_on_save(tmp_path, layer, depth):
    with pytest.raises(ValueError, match="depth"):
        save_weights(tmp_path / "d.npz", *layer, eta=0.5, kind="looped", depth=depth)
    assert not (tmp_path / "d.npz").exists()


@pytest.mark.parametrize("depth, match", [(np.int64(0), "depth must be"), (np.int64(-1), "depth must be"),
                                          (np.int64(MAX_DEPTH + 1), "too large"),
                                          (np.float64(2.5), "'depth' should be a scalar"),
                                          (np.bool_(True), "'depth' should be a scalar")])
def test_bad_depth_on_load(tmp_path, depth, match):
    _assert_refused(_npz(tmp_path / "d.npz", depth=depth), match)


def test_depth_at_the_limit_round_trips(tmp_path, layer):
    save_weights(tmp_path / "l.npz", *layer, eta=0.5, kind="looped", depth=MAX_DEPTH)
    assert load_weights(tmp_path / "l.npz").depth == MAX_DEPTH


def test_folders_empty_and_missing_parents(tmp_path, layer):
    with pytest.raises(ValueError, match="existing folder"):
        save_weights(tmp_path, *layer, eta=0.5)
    with pytest.raises(ValueError, match="path is empty"):
        save_weights("", *layer, eta=0.5)
    with pytest.raises(ValueError, match="does not exist"):
        save_weights(tmp_path / "missing" / "layer.npz", *layer, eta=0.5)
    with pytest.raises(ValueError, match="separator"):
        save_weights(str(tmp_path / "new") + os.sep, *layer, eta=0.5)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ValueError, match="does not exist"):  # the "folder" is a file
        save_weights(tmp_path / "file" / "layer.npz", *layer, eta=0.5)
    with pytest.raises(ValueError, match="existing folder"):
        load_weights(tmp_path)
    with pytest.raises(ValueError, match="path is empty"):
        load_weights("")
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "missing" / "layer.npz")


def test_load_arguments_are_checked(tmp_path, layer):
    path = save_weights(tmp_path / "a.npz", *layer, eta=0.5)
    with pytest.raises(ValueError, match="kind must be None or one of"):
        load_weights(path, kind="one-step")
    with pytest.raises(ValueError, match="d must be"):
        load_weights(path, d=0)
    with pytest.raises(TypeError, match="d must be an integer"):
        load_weights(path, d=3.0)
