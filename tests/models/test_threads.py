"""`$PROMPTHONE_THREADS`: each in-process model's share of the cores."""

from __future__ import annotations

import os

import pytest

from prompthone.errors import ConfigError
from prompthone.models.threads import THREADS_ENV, default_threads, requested_threads


def test_every_core_unless_the_variable_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_threads() == (os.cpu_count() or 1)
    assert requested_threads() is None and requested_threads(2) == 2  # unset: a backend keeps its own default
    monkeypatch.setenv(THREADS_ENV, " 3 ")
    assert default_threads() == 3 and requested_threads() == 3
    assert requested_threads(2) == 2 == default_threads(2)  # an explicit count wins


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5"])
def test_a_value_that_is_not_a_positive_integer_is_refused_by_name(monkeypatch: pytest.MonkeyPatch,
                                                                  text: str) -> None:
    monkeypatch.setenv(THREADS_ENV, text)
    with pytest.raises(ConfigError, match=rf"\$PROMPTHONE_THREADS must be a positive integer, got '{text}'"):
        default_threads()
