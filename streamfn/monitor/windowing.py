"""The monitoring windows: which one a message falls in, and how a window's counts name what
they count of a challenger. (Their Redis keys are `Keys`'; kept apart from the counting, which
needs numpy and pandas, so that the ingest's routes, which only find a window, import neither.)"""

from __future__ import annotations

OTHER = "(other)"  # a category or class the reference does not have
NO_WINDOW = -1  # monitoring off (MONITOR_WINDOW_S=0): a start no window hash ever has
# A challenger version's window: the rows it served as the canary, and those of the canary share
# it could not serve (the champion served them), whose ratio is its error rate.
CANARY_ROWS = "canary"
CANARY_FAILED = "canary_failed"


def window_of(received_at_ms: int, window_s: float) -> int:
    """The start (epoch seconds) of the window a message received at `received_at_ms` falls in
    (NO_WINDOW when windows are off)."""
    if window_s <= 0:
        return NO_WINDOW
    size = int(window_s * 1000)
    return int(received_at_ms // size * size // 1000)


def shadow_prefix(challenger_version: str) -> str:
    """Where a window's hash keeps what it counts of a challenger version's shadow rows."""
    return f"s:{challenger_version}:"
