"""The contract every exercise checker keeps, shared by the tests/test_exercises_chNN.py files."""

import contextlib
import io

import pytest


def stub(*args, **kwargs):
    """An untouched exercise stub."""
    raise NotImplementedError


def returns_none(*args, **kwargs):
    """An answer that forgot its ``return``."""


def _run(check, fn):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = check(fn)
    return result, out.getvalue()


def assert_checker_contract(check, right, wrong=None, *, mistakes=None) -> None:
    """The checker accepts ``right``, rejects every wrong answer, and handles the stub and a None result.

    Parameters
    ----------
    check : the checker
    right : the package's own answer: returns True and prints one "all checks passed" line
    wrong : a wrong answer: raises AssertionError (message not inspected)
    mistakes : dict mapping a regular expression to a wrong answer: raises AssertionError
        whose message matches it (the checker names the mistake), and prints nothing
    """
    result, printed = _run(check, right)
    assert result is True and "all checks passed" in printed and printed.count("\n") == 1, printed
    for pattern, fn in ([(None, wrong)] if wrong is not None else []) + list((mistakes or {}).items()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(AssertionError, match=pattern) as info:
            check(fn)
        assert "passed" not in out.getvalue(), f"printed {out.getvalue()!r} before raising {info.value}"
    result, printed = _run(check, stub)
    assert result is False and "not attempted yet" in printed, printed
    with pytest.raises(AssertionError, match=r"returned None: did you forget `return`\?"):
        check(returns_none)
