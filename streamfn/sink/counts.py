"""The bucket's running counts in Redis, which the console reads: objects and rows per model and
date (with the newest object), and when each model version first wrote a row (their keys are
`Keys`'; the records/s series is streamfn.core.series).

They are added by the infer function's done-and-count script, with the messages it records done.
A message is recorded done once, so every row is counted once; an object is counted with the
message its key starts with (streamfn.sink.layout).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamfn.core.message_ids import key_part
from streamfn.sink.layout import PREDICTIONS, parse_key

# How long the console's counts of a model and date (and of a model's versions) outlive their
# last write: it lists the dates of the last 90 days; the bucket keeps the objects themselves.
CONSOLE_KEPT_S = 90 * 86_400


def day_score(day: str) -> int:
    """A date's place in the sorted set of dates with objects (its ordinal)."""
    return dt.date.fromisoformat(day).toordinal()


@dataclass
class PartitionTally:
    """What one recording adds to a model and date."""

    objects: int = 0
    rows: int = 0
    newest: str = ""


@dataclass
class Tally:
    """What one recording of messages done adds to the console's counts."""

    model: str
    version: str
    at_ms: int
    rows: int = 0
    partitions: dict[str, PartitionTally] = field(default_factory=dict)

    @classmethod
    def of(
        cls, model: str, version: str, at_ms: int, finished: Sequence[tuple[str, int, str]]
    ) -> Tally:
        """From (message id, its records, its object's key) of each message recorded done."""
        tally = cls(model, version, at_ms)
        for message_id, records, key in finished:
            place = parse_key(key)
            if place is None or place.kind != PREDICTIONS:
                continue
            part = tally.partitions.setdefault(place.day, PartitionTally())
            part.rows += records
            if place.first_message_id == key_part(message_id):  # the object's own: count once
                part.objects += 1
            part.newest = max(part.newest, key)
            tally.rows += records
        return tally
