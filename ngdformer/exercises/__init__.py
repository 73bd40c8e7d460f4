"""Answer checkers for the chapters' exercises, one module per chapter (``ngdformer.exercises.ch01`` ...).

A chapter ships each exercise as a stub that raises ``NotImplementedError``; the
check cell calls a checker from here. A checker returns True when the student's
answer matches the reference, raises ``AssertionError`` with a hint when it does
not, and returns False (printing "not attempted yet") while the stub is untouched.
The tests run every checker on the reference answer and on a wrong one.
"""

from __future__ import annotations

import numpy as np


def attempt(fn, *args, **kwargs):
    """Call a student's function; return ``None`` if it still raises ``NotImplementedError``."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        print("not attempted yet: replace the `raise NotImplementedError` with your answer")
        return None


def compare(name: str, got, expected, rtol: float = 1e-8, atol: float = 1e-10) -> bool:
    """Assert ``got`` matches ``expected`` to tolerance, with a hint naming ``name``; return True."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        raise AssertionError(f"{name}: shape {got.shape}, expected {expected.shape}")
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        err = np.max(np.abs(got - expected))
        raise AssertionError(f"{name}: largest difference {err:.3e} from the reference; check the formula")
    print(f"{name}: correct")
    return True
