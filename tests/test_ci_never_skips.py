"""Under `CI=true` the suite cannot pass on evidence it did not gather: a test that skips (a missing extra, model
or server) fails instead; outside CI it is a plain skip (tests/conftest.py, `pytest_runtest_makereport`)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_needs_an_extra():
    pytest.importorskip("prompthone_no_such_extra")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False

def test_fine():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(TESTS)
    return pytester


def test_a_skip_fails_under_ci(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*prompthone_no_such_extra*"])


def test_a_skip_is_a_skip_elsewhere(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    suite.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=1, xfailed=1)
