"""The fault suite's hooks: its cases run last, and their summaries print at the end. (Its
fixtures, the registry, moto's S3 server and the pipeline, are in tests/stacks.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.tally import SUMMARIES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the fault suite after the rest of the tests: the quick answers come first."""
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)  # stable sort


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show every case's summary line at the end, even under -q."""
    if SUMMARIES:
        terminalreporter.section("fault suite")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
