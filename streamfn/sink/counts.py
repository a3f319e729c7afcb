"""The pipeline's running counts in Redis, which the console reads: records accepted and written
per SLOT_S seconds, objects and rows per model and date (with the newest object), and when each
model version first wrote a row.

Each is added in the Redis call that does the work it counts: the ingest's append script counts
the records it appends, and the infer function's done-and-count script counts the rows of the
messages it records done. A message is recorded done once, so every row is counted once; an
object is counted with the message its key starts with (`<first message id>_<hash>.csv`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamfn.core.keys import ROOT, root
from streamfn.core.message_ids import key_part
from streamfn.core.settings import Settings

SLOT_S = 5  # the chart's resolution
SERIES_S = 10 * 60  # how far back the chart goes
SERIES_TTL_S = SERIES_S + 60
ACCEPTED, WRITTEN = "ingested", "written"

# predictions/model=<api>/date=<YYYY-MM-DD>/<first message id>_<hash>.csv
# (the first message id: a stream id, an SQS message id, a Kinesis `shard_sequence`)
_KEY = re.compile(
    r"^predictions/model=([^/]+)/date=(\d{4}-\d{2}-\d{2})/([A-Za-z0-9._-]+)_[0-9a-f]{16}\.csv$"
)


def slot_of(epoch_s: float) -> int:
    """The start (epoch seconds) of the SLOT_S slot an instant falls in."""
    return int(epoch_s // SLOT_S * SLOT_S)


def _prefix(at: str | None = None) -> str:
    return f"{at or root()}console:"


def totals_key(at: str | None = None) -> str:
    """The hash of records ingested and written since the data began (under `at`, a root of
    accepted_roots, the records one partition accepted)."""
    return f"{_prefix(at)}totals"


def accepted_roots(settings: Settings) -> list[str]:
    """Per partition, where ingest counts what it accepts. On one node, beside every other
    count; on a Redis Cluster, in the partition's own slot (its stream's hash tag), so that the
    append script counts in the step that appends, and the counting spreads as the streams do."""
    if not settings.REDIS_CLUSTER or settings.STREAM_BACKEND != "redis":  # Kinesis, SQS: root
        return [root()] * settings.STREAM_PARTITIONS
    return [f"{ROOT}{{{slot_tag(stream)}}}:" for stream in settings.streams]


def slot_tag(key: str) -> str:
    """What Redis Cluster hashes of a key: its hash tag's content, or the whole key."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start != -1 and end > start + 1 else key


def partitions_key() -> str:
    """The sorted set of "<model>/<date>", scored by the date."""
    return f"{_prefix()}partitions"


def series_key(kind: str, slot: int, at: str | None = None) -> str:
    """The counter of `kind` (ACCEPTED or WRITTEN) records in one slot (under `at`: see
    totals_key)."""
    return f"{_prefix(at)}{kind}:{slot}"


def partition_key(model: str, day: str) -> str:
    """The hash of one model and date: objects, rows, newest (the newest object's key)."""
    return f"{_prefix()}objects:{model}:{day}"


def versions_key(model: str) -> str:
    """The hash of a model's versions: version -> when it first wrote a row (epoch ms)."""
    return f"{_prefix()}versions:{model}"


def day_score(day: str) -> int:
    """A date's place in partitions_key() (its ordinal)."""
    return dt.date.fromisoformat(day).toordinal()


@dataclass(frozen=True)
class ObjectPlace:
    """Where a prediction object sits: its model, date and the message its key starts with."""

    model: str
    day: str
    first_message_id: str


def place_of(key: str) -> ObjectPlace | None:
    """The model, date and first message of a prediction object's key (None: not one)."""
    found = _KEY.match(key)
    return ObjectPlace(*found.groups()) if found else None


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
            place = place_of(key)
            if place is None:
                continue
            part = tally.partitions.setdefault(place.day, PartitionTally())
            part.rows += records
            if place.first_message_id == key_part(message_id):  # the object's own: count once
                part.objects += 1
            part.newest = max(part.newest, key)
            tally.rows += records
        return tally


def recent_slots(now_s: float) -> list[int]:
    """The slots of the last SERIES_S seconds, oldest first (the newest is still filling)."""
    newest = slot_of(now_s)
    return list(range(newest - SERIES_S + SLOT_S, newest + 1, SLOT_S))
