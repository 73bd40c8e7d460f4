"""Saving and loading trained layers as ``.npz`` files, without pickle (chapters 06-07).

A file holds ``W``, ``V`` (float64, (2d, 2d)), ``d``, ``eta`` (the NGD step size the layer
is compared with), ``kind`` (``"one_step"`` or ``"looped"``), ``depth`` (the number of applications it was
trained at; 1 for a one-step layer) and ``format_version`` (2; version 1 files, which
called the depth ``loops``, still load). Loading uses
``allow_pickle=False`` and checks everything: a corrupted, truncated or mismatched file
raises ``ValueError`` saying what is wrong. A round trip is bit-exact.
"""

from __future__ import annotations

import zipfile
from typing import NamedTuple

import numpy as np

from .checks import check_positive

FORMAT_VERSION = 2
KINDS = ("one_step", "looped")
_KEYS = {1: ("W", "V", "d", "eta", "kind", "loops", "format_version"),
         2: ("W", "V", "d", "eta", "kind", "depth", "format_version")}


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
    path : str or os.PathLike
    W, V : ndarray of shape (2d, 2d), finite
    eta : float > 0, the NGD step size the layer performs (or is compared with)
    kind : ``"one_step"`` or ``"looped"``
    depth : int >= 1, number of applications the layer was trained at

    Returns
    -------
    path : str
    """
    W, V = np.array(W, dtype=np.float64), np.array(V, dtype=np.float64)
    _check_layer(W, V, eta, kind, depth, "arguments")
    with open(path, "wb") as fh:  # a file handle: np.savez would append ".npz" to a bare name
        np.savez(fh, W=W, V=V, d=np.int64(W.shape[0] // 2), eta=np.float64(eta), kind=np.str_(kind),
                 depth=np.int64(depth), format_version=np.int64(FORMAT_VERSION))
    return str(path)


def load_weights(path, *, kind: str | None = None, d: int | None = None) -> SavedWeights:
    """Read a layer written by :func:`save_weights`, checking format, version, shapes and values.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str or None, if given the file must hold this kind of model
    d : int or None, if given the file must hold a layer of this dimension

    Returns
    -------
    SavedWeights

    Raises
    ------
    FileNotFoundError if ``path`` does not exist; ValueError for anything wrong inside it.
    """
    try:
        _check_magic(path)
        with np.load(path, allow_pickle=False) as data:
            if "format_version" not in data.files:
                raise ValueError(f"missing entry 'format_version' (found {sorted(data.files)})")
            version = _scalar({"format_version": data["format_version"]}, "format_version", "i", path)
            if version not in _KEYS:
                raise ValueError(f"format_version {version} is not supported (this code reads {sorted(_KEYS)})")
            keys = _KEYS[version]
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise ValueError(f"missing entries {missing} (found {sorted(data.files)})")
            arrays = {k: data[k] for k in keys}  # reads every member now, so CRC errors surface here
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a valid ngdformer weights file (truncated or corrupted archive): {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a valid ngdformer weights file: {exc}") from exc
    W, V = arrays["W"], arrays["V"]
    for name, M in (("W", W), ("V", V)):
        if M.dtype != np.float64:
            raise ValueError(f"{path}: {name} has dtype {M.dtype}, expected float64")
    saved = SavedWeights(W, V, _scalar(arrays, "d", "i", path), _scalar(arrays, "eta", "f", path),
                         _scalar(arrays, "kind", "U", path), _scalar(arrays, keys[5], "i", path), version)
    _check_layer(W, V, saved.eta, saved.kind, saved.depth, str(path))
    if W.shape != (2 * saved.d, 2 * saved.d):
        raise ValueError(f"{path}: W has shape {W.shape} but d = {saved.d} says ({2 * saved.d}, {2 * saved.d})")
    if kind is not None and saved.kind != kind:
        raise ValueError(f"{path}: holds a {saved.kind!r} model, expected {kind!r}")
    if d is not None and saved.d != d:
        raise ValueError(f"{path}: holds a layer with d = {saved.d}, expected d = {d}")
    return saved


def _check_magic(path) -> None:
    """Recognise the file type from its first bytes (np.load would guess "pickle" for anything unknown)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError("it holds a single .npy array, not an .npz archive")
    if not head.startswith(b"PK"):
        raise ValueError(f"not an .npz (zip) archive: it starts with {head!r}" if head else "the file is empty")


def _scalar(arrays: dict, key: str, kind: str, path):
    a = arrays[key]
    if a.shape != () or a.dtype.kind != kind:
        raise ValueError(f"{path}: entry {key!r} should be a scalar of kind {kind!r}, got dtype {a.dtype} "
                         f"shape {a.shape}")
    return {"i": int, "f": float, "U": str}[kind](a)


def _check_layer(W, V, eta, kind, depth, where: str) -> None:
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] % 2 or W.shape[0] == 0 or V.shape != W.shape:
        raise ValueError(f"{where}: W and V must both be (2d, 2d), got {W.shape} and {V.shape}")
    for name, M in (("W", W), ("V", V)):
        if not np.all(np.isfinite(M)):
            raise ValueError(f"{where}: {name} contains non-finite values")
    check_positive("eta", eta)
    check_positive("depth", depth, integer=True)
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
