"""Saving and loading trained layers as ``.npz`` files, without pickle (chapters 06-07).

A file holds ``W``, ``V`` (float64, (2d, 2d)), ``d``, ``eta`` (the NGD step size the layer
is compared with), ``kind`` (``"one_step"`` or ``"looped"``), ``depth`` (the number of applications it was
trained at; 1 for a one-step layer) and ``format_version`` (2; version 1 files, which
called the depth ``loops``, still load). A round trip is bit-exact.

Loading never trusts the file: it reads the archive member by member with :mod:`zipfile`,
refuses encrypted members, compression methods other than stored and deflate, members that
are not ``.npy`` arrays, and reads each array's header (``numpy.lib.format``) before its data,
so that a shape larger than the layer (or than ``MAX_ELEMENTS``), Python objects (no pickle) or a
wrong type are refused before anything is allocated. Every problem inside a file (corrupted,
truncated, mismatched) raises ``ValueError`` naming the path and what is wrong.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from .checks import MAX_DEPTH, MAX_ELEMENTS, InputTypeError, as_float, check_positive

FORMAT_VERSION = 2
KINDS = ("one_step", "looped")
_KEYS = {1: ("W", "V", "d", "eta", "kind", "loops", "format_version"),
         2: ("W", "V", "d", "eta", "kind", "depth", "format_version")}
_SCALARS = {"d": "i", "eta": "f", "kind": "U", "depth": "i", "loops": "i", "format_version": "i"}
_MAX_KIND_CHARS = 64  # the longest string a "kind" entry may hold (the real ones have at most 8)
_MAX_D = int(np.sqrt(MAX_ELEMENTS)) // 2  # the largest d whose (2d, 2d) layer has at most MAX_ELEMENTS entries
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}  # what np.savez(_compressed) writes
# What reading a damaged archive can raise, from zipfile, zlib, struct and numpy.lib.format.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, struct.error, EOFError, RuntimeError, NotImplementedError,
                OSError, ValueError, KeyError, TypeError, OverflowError, AttributeError, IndexError)


class SavedWeights(NamedTuple):
    """What :func:`load_weights` returns."""

    W: np.ndarray  #: (2d, 2d) score weights
    V: np.ndarray  #: (2d, 2d) value weights
    d: int  #: input dimension
    eta: float  #: the NGD step size the layer performs or is compared with
    kind: str  #: "one_step" or "looped"
    depth: int  #: number of applications it was trained at
    format_version: int  #: version of the file format


def save_weights(path, W, V, *, eta: float, kind: str = "one_step", depth: int = 1) -> str:
    """Write a layer to ``path`` (exactly that name; no suffix is added) in the format above.

    Parameters
    ----------
    path : str or os.PathLike, a file name (not a file descriptor or an open file); its folder must exist
        and the name must not be an existing folder
    W, V : ndarray of shape (2d, 2d), real and finite, with (2d)^2 <= ``MAX_ELEMENTS``
    eta : float > 0, the NGD step size the layer performs (or is compared with)
    kind : ``"one_step"`` or ``"looped"``
    depth : int, 1 <= depth <= ``MAX_DEPTH``, number of applications the layer was trained at

    Returns
    -------
    path : str

    Raises
    ------
    TypeError (``InputTypeError``, also a ValueError) for a ``path`` that is not a str or os.PathLike or
    arguments of the wrong type (complex or text weights, a float depth); ValueError for an empty
    path, a path naming a folder or inside a missing folder, and values out of range.
    """
    path, W, V = _check_save(path, W, V, eta, kind, depth)
    with open(path, "wb") as fh:  # a file handle: np.savez would append ".npz" to a bare name
        np.savez(fh, W=W, V=V, d=np.int64(W.shape[0] // 2), eta=np.float64(eta), kind=np.str_(kind),
                 depth=np.int64(depth), format_version=np.int64(FORMAT_VERSION))
    return path


def load_weights(path, *, kind: str | None = None, d: int | None = None) -> SavedWeights:
    """Read a layer written by :func:`save_weights`, checking format, version, shapes and values.

    Parameters
    ----------
    path : str or os.PathLike, a file name (not a file descriptor or an open file)
    kind : str or None, if given the file must hold this kind of model
    d : int or None, if given the file must hold a layer of this dimension

    Returns
    -------
    SavedWeights

    Raises
    ------
    FileNotFoundError if ``path`` does not exist, PermissionError if it cannot be read; TypeError
    (``InputTypeError``) for a ``path`` that is not a str or os.PathLike; ValueError for an empty path,
    a folder, and anything wrong inside the file (the message names the path).
    """
    path = _check_load(path, kind, d)
    try:
        arrays, version = _read_archive(path)
    except (FileNotFoundError, PermissionError):
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"{path}: not a valid ngdformer weights file (truncated or corrupted archive): {exc}") from exc
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: not a valid ngdformer weights file: {exc}") from exc
    keys = _KEYS[version]
    saved = SavedWeights(arrays["W"], arrays["V"], arrays["d"], arrays["eta"], arrays["kind"], arrays[keys[5]],
                         version)
    try:
        _check_layer(saved.W, saved.V, saved.eta, saved.kind, saved.depth)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if saved.W.shape != (2 * saved.d, 2 * saved.d):
        raise ValueError(f"{path}: W has shape {saved.W.shape} but d = {saved.d} says "
                         f"({2 * saved.d}, {2 * saved.d})")
    if kind is not None and saved.kind != kind:
        raise ValueError(f"{path}: holds a {saved.kind!r} model, expected {kind!r}")
    if d is not None and saved.d != d:
        raise ValueError(f"{path}: holds a layer with d = {saved.d}, expected d = {d}")
    return saved


def _check_path(path, *, writing: bool) -> str:
    """A file name as a str: refuses file descriptors, open files, bytes, an empty name and folders."""
    if not isinstance(path, (str, os.PathLike)):
        hint = " (file descriptors are not accepted: pass the file's name)" if isinstance(path, int) else ""
        raise InputTypeError(f"path must be a str or os.PathLike naming a file, got {type(path).__name__} "
                             f"{str(path)[:60]!r}{hint}")
    name = os.fspath(path)
    if not isinstance(name, str):
        raise InputTypeError(f"path must name the file as text (str), got {type(name).__name__} {name[:60]!r}")
    if not name:
        raise ValueError("path is empty: give the name of the weights file, for example 'out/layer.npz'")
    if "\0" in name:
        raise ValueError(f"path {name[:60]!r} contains a NUL character")
    if os.path.isdir(name):
        raise ValueError(f"path {name!r} is an existing folder, not a file; name a file inside it, "
                         f"for example {os.path.join(name, 'layer.npz')!r}")
    if writing:
        if name.endswith(("/", os.sep)):
            raise ValueError(f"path {name!r} ends with a separator, so it names a folder, not a file")
        folder = os.path.dirname(os.path.abspath(name))
        if not os.path.isdir(folder):
            raise ValueError(f"cannot write {name!r}: its folder {folder!r} does not exist "
                             "(or is not a folder); create it first")
    return name


def _check_save(path, W, V, eta, kind, depth):
    """Validate every argument of :func:`save_weights`; return the path as str and W, V as float64."""
    path = _check_path(path, writing=True)
    W, V = as_float("W", W), as_float("V", V)  # refuses complex, text and object weights (TypeError)
    W, V = W.astype(np.float64, copy=False), V.astype(np.float64, copy=False)
    if W.size > MAX_ELEMENTS:
        raise ValueError(f"W has shape {W.shape}: more than MAX_ELEMENTS = {MAX_ELEMENTS} entries")
    _check_layer(W, V, eta, kind, depth)
    return path, W, V


def _check_load(path, kind, d) -> str:
    """Validate the arguments of :func:`load_weights` (not the file); return the path as str."""
    path = _check_path(path, writing=False)
    if kind is not None and (not isinstance(kind, str) or kind not in KINDS):
        raise ValueError(f"kind must be None or one of {KINDS}, got {str(kind)[:60]!r}")
    if d is not None:
        check_positive("d", d, integer=True)
    return path


def _read_archive(path: str) -> tuple[dict, int]:
    """Every entry of the weights file, checked member by member before its data is read."""
    _check_magic(path)
    with zipfile.ZipFile(path) as zf:
        members = _members(zf, os.path.getsize(path))
        if "format_version" not in members:
            raise ValueError(f"missing entry 'format_version' (found {sorted(members)})")
        version = _read_scalar(zf, members, "format_version")
        if version not in _KEYS:
            raise ValueError(f"format_version {version} is not supported (this code reads {sorted(_KEYS)})")
        keys = _KEYS[version]
        missing = [k for k in keys if k not in members]
        if missing:
            raise ValueError(f"missing entries {missing} (found {sorted(members)})")
        arrays = {k: _read_scalar(zf, members, k) for k in keys if k in _SCALARS}
        d = arrays["d"]
        if not 1 <= d <= _MAX_D:
            raise ValueError(f"entry 'd' is {d}; a layer needs 1 <= d <= {_MAX_D} "
                             f"(its (2d, 2d) weights must have at most MAX_ELEMENTS = {MAX_ELEMENTS} entries)")
        for name in ("W", "V"):
            arrays[name] = _read_weights(zf, members[name], name, max_entries=(2 * d) ** 2)
    return arrays, version


def _check_magic(path: str) -> None:
    """Recognise the file type from its first bytes (np.load would guess "pickle" for anything unknown)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError("it holds a single .npy array, not an .npz archive")
    if not head.startswith(b"PK"):
        raise ValueError(f"not an .npz (zip) archive: it starts with {head!r}" if head else "the file is empty")


def _members(zf: zipfile.ZipFile, archive_size: int) -> dict:
    """Map entry name -> ZipInfo, refusing members np.savez would not write before any of them is read."""
    members = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise ValueError(f"member {name!r} is not an .npy array (an .npz archive holds only .npy members)")
        if name[:-4] in members:
            raise ValueError(f"member {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise ValueError(f"member {name!r} is encrypted")
        if info.compress_type not in _METHODS:
            raise ValueError(f"member {name!r} uses compression method {info.compress_type}; only stored (0) and "
                             "deflate (8) are read")
        if info.compress_size > archive_size:
            raise ValueError(f"member {name!r} claims {info.compress_size} bytes in an archive of {archive_size}")
        members[name[:-4]] = info
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, *, max_entries: int, check) -> np.ndarray:
    """Read one .npy member: its header first (refused by ``check(dtype, shape)`` or if it has more than
    ``max_entries`` entries), then exactly its data, then to its end so that zipfile checks the CRC."""
    with zf.open(info) as fh:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"entry {name!r} uses .npy format version {version}; this code reads 1.0 and 2.0")
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"entry {name!r} has dtype {dtype}: Python objects and structured types are never "
                             "loaded (no pickle)")
        check(dtype, shape)
        entries = 1
        for k in shape:
            if k < 0:
                raise ValueError(f"entry {name!r} declares the shape {shape}")
            entries *= k
        if entries > min(max_entries, MAX_ELEMENTS):
            raise ValueError(f"entry {name!r} declares shape {shape} = {entries} entries; at most "
                             f"{min(max_entries, MAX_ELEMENTS)} are possible here")
        count = entries * dtype.itemsize
        data = fh.read(count)
        if len(data) != count:
            raise EOFError(f"entry {name!r} is truncated: {len(data)} of its {count} bytes of data are there")
        if fh.read(1):
            raise ValueError(f"entry {name!r} has data beyond its declared shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=entries)
    return array.reshape(shape[::-1]).T.copy() if fortran else array.reshape(shape).copy()


def _read_scalar(zf: zipfile.ZipFile, members: dict, key: str):
    """A scalar entry as a Python int, float or str (its kind is fixed by ``_SCALARS``)."""
    kind = _SCALARS[key]

    def check(dtype, shape):
        too_long = kind == "U" and dtype.itemsize > 4 * _MAX_KIND_CHARS
        if shape != () or dtype.kind != kind or too_long:
            raise ValueError(f"entry {key!r} should be a scalar of kind {kind!r}, got dtype {dtype} shape {shape}")

    a = _read_member(zf, members[key], key, max_entries=1, check=check)
    return {"i": int, "f": float, "U": str}[kind](a)


def _read_weights(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, *, max_entries: int) -> np.ndarray:
    """``W`` or ``V``: a float64 array (either byte order) of at most ``max_entries`` entries, as native float64."""

    def check(dtype, shape):
        if dtype.kind != "f" or dtype.itemsize != 8:
            raise ValueError(f"{name} has dtype {dtype}, expected real float64")

    return _read_member(zf, info, name, max_entries=max_entries, check=check).astype(np.float64, copy=False)


def _check_layer(W, V, eta, kind, depth) -> None:
    """The contents of a layer, on save and on load: shapes, finiteness, eta, kind and depth."""
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] % 2 or W.shape[0] == 0 or V.shape != W.shape:
        raise ValueError(f"W and V must both be (2d, 2d), got {W.shape} and {V.shape}")
    for name, M in (("W", W), ("V", V)):
        if not np.all(np.isfinite(M)):
            raise ValueError(f"{name} contains non-finite values")
    check_positive("eta", eta)
    check_positive("depth", depth, integer=True, maximum=MAX_DEPTH)
    if not isinstance(kind, str):
        raise InputTypeError(f"kind must be a str, one of {KINDS}, got {str(kind)[:60]!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind[:60]!r}")
