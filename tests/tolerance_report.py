"""How close does each tolerance in the tests come to failing? A measuring tool, not a test.

Loaded by ``conftest.py`` when ``NGDFORMER_TOLERANCE_REPORT`` names an output file. It
wraps the three ways the tests compare numbers, ``rel_error(...) < tol`` (and ``scaled_error``),
``np.testing.assert_allclose`` and the gradient checker, records at each call site in a
``test_*.py`` file the worst *use* of its tolerance (1.0 means exactly at the limit), and
writes one line per site when the session ends, worst first::

    NGDFORMER_TOLERANCE_REPORT=tol.tsv HYPOTHESIS_PROFILE=sweep python -m pytest tests

``sweep`` runs 10^4 examples per property test; fixed-seed tests run once.
"""

from __future__ import annotations

import atexit
import linecache
import os
import re
import sys

import numpy as np

import ngdformer
import ngdformer.gradcheck as gradcheck
import numerics

_sites: dict = {}  # (file, line) -> [worst use, calls, worst raw value, kind]
_REL = re.compile(r"(?:rel_error|scaled_error)\(.*?\)\s*(<=|<|>=|>)\s*([0-9.]+e[-+]?[0-9]+|[0-9.]+)")


def _site():
    frame = sys._getframe(2)
    while frame is not None and not os.path.basename(frame.f_code.co_filename).startswith("test_"):
        frame = frame.f_back
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def _statement(site) -> str:
    """The source line of a call site and the next two (a tolerance may sit on a continuation line)."""
    return " ".join(linecache.getline(site[0], site[1] + k).strip() for k in range(3))


def _record(site, use: float, raw: float, kind: str) -> None:
    if site is None:
        return
    entry = _sites.setdefault(site, [-np.inf, 0, raw, kind])
    entry[1] += 1
    if not use <= entry[0]:  # NaN counts as worst
        entry[0], entry[2] = use, raw


def _rel_error(a, b):
    return _relative(_orig_rel_error(a, b), "rel_error")


def _scaled_error(a, b, scale):
    return _relative(_orig_scaled_error(a, b, scale), "scaled_error")


def _relative(value, name):
    site = _site()
    if site is not None:
        match = _REL.search(_statement(site))
        if match is None:
            _record(site, np.nan, value, f"{name} (tolerance not parsed)")
        else:
            op, tol = match.group(1), float(match.group(2))
            use = value / tol if op.startswith("<") else tol / max(value, 1e-300)
            _record(site, use, value, f"{name} {op} {tol:g}")
    return value


def _assert_allclose(actual, desired, rtol=1e-7, atol=0, *args, **kwargs):
    with np.errstate(all="ignore"):
        a = np.asarray(actual, dtype=np.complex128 if np.iscomplexobj(actual) else np.float64)
        d = np.asarray(desired, dtype=a.dtype)
        diff = np.abs(a - d)
        allowed = atol + rtol * np.abs(d)
        ratio = np.where(diff == 0, 0.0, diff / np.where(allowed > 0, allowed, 1e-300))
        ratio = np.where(np.isnan(a) & np.isnan(d), 0.0, ratio)
    use = float(np.max(ratio, initial=0.0))
    _record(_site(), use, float(np.max(diff, initial=0.0)), f"assert_allclose rtol={rtol:g} atol={atol:g}")
    return _orig_allclose(actual, desired, rtol, atol, *args, **kwargs)


def _gradient_errors(num, ana):
    err = _orig_gradient_errors(num, ana)
    _record(_site(), float(np.max(err, initial=0.0)), float(np.max(err, initial=0.0)), "gradient check <= 1")
    return err


def _write(path: str) -> None:
    rows = sorted(_sites.items(), key=lambda kv: -np.nan_to_num(kv[1][0], nan=np.inf))
    with open(path, "w") as fh:
        fh.write("use_of_tolerance\tcalls\tworst_value\tkind\tsite\n")
        for (file, line), (use, calls, raw, kind) in rows:
            fh.write(f"{use:.3g}\t{calls}\t{raw:.3g}\t{kind}\t{os.path.basename(file)}:{line}\n")


_orig_rel_error = gradcheck.rel_error
_orig_scaled_error = numerics.scaled_error
_orig_allclose = np.testing.assert_allclose
_orig_gradient_errors = gradcheck.gradient_errors


def install(path: str) -> None:
    """Wrap the comparison functions (before the test modules import them) and write ``path`` at exit."""
    ngdformer.rel_error = gradcheck.rel_error = _rel_error
    numerics.scaled_error = _scaled_error
    gradcheck.gradient_errors = _gradient_errors
    np.testing.assert_allclose = _assert_allclose
    atexit.register(_write, path)
