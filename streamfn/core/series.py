"""The console's chart of records accepted and written: counted per SLOT_S seconds, in the Redis
call that does the work (ingest's append script, the infer function's done-and-count script),
under `Keys.series`; kept SERIES_S seconds."""

from __future__ import annotations

SLOT_S = 5  # the chart's resolution
SERIES_S = 10 * 60  # how far back the chart goes
SERIES_TTL_S = SERIES_S + 60
ACCEPTED, WRITTEN = "ingested", "written"


def slot_of(epoch_s: float) -> int:
    """The start (epoch seconds) of the SLOT_S slot an instant falls in."""
    return int(epoch_s // SLOT_S * SLOT_S)


def recent_slots(now_s: float) -> list[int]:
    """The slots of the last SERIES_S seconds, oldest first (the newest is still filling)."""
    newest = slot_of(now_s)
    return list(range(newest - SERIES_S + SLOT_S, newest + 1, SLOT_S))
