"""Answer checkers for the chapters' exercises, one module per chapter (``ngdformer.exercises.ch01`` ...).

A chapter ships each exercise as a stub that raises ``NotImplementedError``; the check
cell calls a checker from here. Every checker keeps one contract:

- the untouched stub: it prints "not attempted yet" and returns False;
- an answer that returns None: ``AssertionError`` "your function returned None: did you
  forget `return`?";
- a wrong answer: ``AssertionError`` whose message names the likely mistake (a sign flip,
  a transposed array, a missing 1/B, the wrong softmax axis, ...) without giving the
  answer away;
- a right answer: it prints one line saying what passed, and returns True. Nothing is
  printed as passed before every comparison has been made.

Checkers compare the student's function with the package's own on random inputs of
several shapes; after attempting an exercise, read the package's function as the answer
key. The tests run every checker on the package's answer, on named wrong answers, on the
stub and on a function returning None.
"""

from __future__ import annotations

import functools

import numpy as np


class NotAttempted(Exception):
    """Raised inside a checker when the student's function is still the stub."""


def checker(label: str):
    """Decorator for a checker: the contract above around a body that returns when all passed.

    The body calls :func:`attempt` (which raises :class:`NotAttempted` for the stub) and
    :func:`compare`; it returns normally only when everything matched.
    """
    def wrap(body):
        @functools.wraps(body)
        def check(*args, **kwargs) -> bool:
            try:
                note = body(*args, **kwargs)
            except NotAttempted:
                print(f"{label}: not attempted yet (replace the `raise NotImplementedError` with your answer)")
                return False
            print(f"{label}: all checks passed" + (f" ({note})" if note else ""))
            return True
        return check
    return wrap


def attempt(fn, *args, **kwargs):
    """Call a student's function; :class:`NotAttempted` for the stub, ``AssertionError`` for a None result."""
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted from None
    if result is None:
        raise AssertionError("your function returned None: did you forget `return`?")
    return result


def _close(a, b, rtol, atol) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def name_mistake(got, expected, *, rtol: float = 1e-8, atol: float = 1e-10, alternatives=()) -> str | None:
    """The name of the mistake that turns ``expected`` into ``got``, if it is a usual one; else None.

    Parameters
    ----------
    got, expected : array_like of the same shape
    rtol, atol : float, the tolerance of a match
    alternatives : sequence of (message, array) pairs, wrong answers a checker computed itself
        (the softmax over the wrong axis, y forgotten, the wrong block, ...)

    Returns
    -------
    message : str or None
    """
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    for message, wrong in alternatives:
        if _close(got, np.asarray(wrong, dtype=float), rtol, atol):
            return message
    if got.shape != expected.shape:
        return None
    if np.any(expected) and _close(got, -expected, rtol, atol):
        return "the sign is flipped"
    if got.ndim >= 2 and got.shape[-1] == got.shape[-2] and _close(got, np.swapaxes(expected, -1, -2), rtol, atol):
        return "the result is transposed (check which index is the row)"
    scale = np.vdot(got, expected) / max(np.vdot(expected, expected), 1e-300)
    if abs(scale) > 1e-12 and not np.isclose(scale, 1.0) and _close(got, scale * expected, rtol, atol):
        return (f"the result is off by a constant factor of {scale:.4g} (a missing or extra 1/B or 1/n, "
                "a sum instead of a mean, or the other way round?)")
    return None


def compare(name: str, got, expected, *, rtol: float = 1e-8, atol: float = 1e-10, alternatives=(),
            hint: str = "") -> None:
    """Raise ``AssertionError`` naming ``name`` and the likely mistake unless ``got`` matches ``expected``.

    Parameters
    ----------
    name : str, what is compared (appears in the message)
    got, expected : array_like
    rtol, atol : float, the tolerance
    alternatives : sequence of (message, array), see :func:`name_mistake`
    hint : str, added to the message when no usual mistake is recognised

    Returns
    -------
    None; it prints nothing (the checker prints once, when everything has passed).
    """
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: expected an array of numbers, got {type(got).__name__}") from None
    expected = np.asarray(expected, dtype=float)
    mistake = name_mistake(got, expected, rtol=rtol, atol=atol, alternatives=alternatives)
    if got.shape != expected.shape:
        raise AssertionError(mistake or f"{name}: shape {got.shape}, expected {expected.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{name}: contains NaN or inf (an overflow? shift by the maximum before exp)")
    if _close(got, expected, rtol, atol):
        return
    if mistake:
        raise AssertionError(f"{name}: {mistake}")
    err = float(np.max(np.abs(got - expected)))
    raise AssertionError(f"{name}: largest difference {err:.3e} from the reference" + (f"; {hint}" if hint else ""))
