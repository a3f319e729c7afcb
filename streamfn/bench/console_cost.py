"""What the console costs the ingest: the CPU one page refresh takes in the ingest process,
against the CPU the ingest spends at the bench's load.

A refresh is what the page's script asks for every REFRESH_S seconds (GET /models only every
MODELS_EVERY refreshes). Before each measured refresh a request per model is sent and drained,
so that every refresh finds new objects and reads their rows from S3, as it would on a live
pipeline; only the CPU spent while the refresh's calls run is counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

# As in streamfn/console/static/console.js.
REFRESH_S = 5.0
MODELS_EVERY = 6
PAGE_CALLS = ("/ui/api/status", "/ui/api/monitoring?windows=30", "/ui/api/rows", "/ui/api/objects")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def page_calls(refresh: int) -> Sequence[str]:
    """The paths one refresh of the page asks for."""
    return (*PAGE_CALLS, "/ui/api/models") if refresh % MODELS_EVERY == 0 else PAGE_CALLS


def refresh_cpu_s(url: str, pid: int, renew: Callable[[], None], refreshes: int = 24) -> float:
    """The ingest's CPU seconds per page refresh, each after `renew` made new objects."""
    spent = 0.0
    with httpx.Client(base_url=url, timeout=30) as client:
        for refresh in range(refreshes):
            renew()
            before = cpu_seconds(pid)
            for path in page_calls(refresh):
                client.get(path).raise_for_status()
            spent += cpu_seconds(pid) - before
    return spent / refreshes


class CpuMeter:
    """The cores a process used between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = self._wall = 0.0

    def start(self) -> None:
        self._cpu, self._wall = cpu_seconds(self.pid), time.monotonic()

    def stop(self) -> float:
        """Cores busy on average since start()."""
        return (cpu_seconds(self.pid) - self._cpu) / (time.monotonic() - self._wall)
