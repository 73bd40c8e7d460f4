"""The contract every exercise checker keeps, shared by the tests/test_exercises_chNN.py files."""

import pytest


def stub(*args):
    """An untouched exercise stub."""
    raise NotImplementedError


def assert_checker_contract(check, right, wrong) -> None:
    """``check`` returns True on the right answer, raises AssertionError on a wrong one, False on a stub."""
    assert check(right) is True
    with pytest.raises(AssertionError):
        check(wrong)
    assert check(stub) is False
