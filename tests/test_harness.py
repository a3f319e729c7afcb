"""The test harness's own promises: polling with a deadline reports a failed check at once."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for


def test_wait_for_lets_an_assertion_through_at_once() -> None:
    def check() -> bool:
        raise AssertionError("rows differ: 3 != 4")

    started = time.monotonic()
    with pytest.raises(AssertionError, match="rows differ"):
        wait_for(check, timeout=30)
    assert time.monotonic() - started < 1


def test_wait_for_retries_other_errors_until_the_deadline() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not up yet")
        return True

    assert wait_for(check, timeout=5, interval=0.001) is True
    assert len(calls) == 3
