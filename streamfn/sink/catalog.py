"""The prediction objects in the bucket, for `streamfn results`: partitions, newest rows,
downloads; in any format (a bucket may hold several: SINK_FORMAT changed mid-day).

Everything goes through `Bucket`, so it works the same against MinIO, AWS S3 and the embedded
server, and keys are read by the layout's own parser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamfn.core import stream_ids
from streamfn.sink.bucket import Bucket
from streamfn.sink.formats.base import format_of
from streamfn.sink.layout import PREDICTIONS, parse_key, prefix


@dataclass(frozen=True)
class StoredObject:
    """One prediction object of the bucket and the partition its key names."""

    key: str
    size: int
    last_modified: dt.datetime
    model: str
    date: str
    first_id: tuple[int, int]  # the first message id its name starts with; (0, 0) if none

    @property
    def order(self) -> tuple[dt.datetime, tuple[int, int], str]:
        """Oldest first: S3 times have whole seconds, so the stream id breaks ties."""
        return self.last_modified, self.first_id, self.key


@dataclass(frozen=True)
class Partition:
    """One model and date: how many objects, bytes, and when it was last written."""

    model: str
    date: str
    objects: int
    size: int
    newest: dt.datetime


def list_objects(
    bucket: Bucket, model: str | None = None, date: str | None = None
) -> list[StoredObject]:
    """The prediction objects (optionally of one model and date), oldest first."""
    found = []
    for item in bucket.list_objects(prefix(PREDICTIONS, model, date if model else None)):
        place = parse_key(item["key"])
        if place is None or format_of(item["key"]) is None:
            continue  # not a prediction object
        if date is not None and place.day != date:
            continue  # another day
        first_id = stream_ids.parse(str(place.first_message_id)) or (0, 0)
        found.append(StoredObject(item["key"], item["size"], item["last_modified"],
                                  place.model, place.day, first_id))  # fmt: skip
    return sorted(found, key=lambda o: o.order)


def partitions(objects: Sequence[StoredObject]) -> list[Partition]:
    """The objects summed per (model, date), newest date first."""
    groups: dict[tuple[str, str], list[StoredObject]] = {}
    for stored in objects:
        groups.setdefault((stored.model, stored.date), []).append(stored)
    summary = [
        Partition(model, date, len(group), sum(o.size for o in group),
                  max(o.last_modified for o in group))
        for (model, date), group in groups.items()
    ]  # fmt: skip
    return sorted(summary, key=lambda p: (p.date, p.model), reverse=True)


def newest_rows(
    bucket: Bucket, objects: Sequence[StoredObject], limit: int
) -> list[dict[str, str]]:
    """Up to `limit` rows of the newest objects, newest object first."""
    rows: list[dict[str, str]] = []
    for stored in reversed(objects):
        if len(rows) >= limit:
            break
        fmt = format_of(stored.key)
        if fmt is None:  # not listed by list_objects
            continue
        header, cells = fmt.table(bucket.get(stored.key))
        rows.extend(dict(zip(header, row, strict=True)) for row in cells[: limit - len(rows)])
    return rows


def download(
    bucket: Bucket,
    objects: Sequence[StoredObject],
    directory: Path,
    on_each: Callable[[StoredObject], None] | None = None,
) -> list[Path]:
    """Copy objects under `directory`, keeping their keys as paths (Hive partitions and all)."""
    written = []
    for stored in objects:
        path = directory / stored.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bucket.get(stored.key))
        written.append(path)
        if on_each is not None:
            on_each(stored)
    return written
