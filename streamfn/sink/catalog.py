"""The CSV objects in the bucket, for `streamfn results`: partitions, newest rows, downloads.

Everything goes through `Bucket`, so it works the same against MinIO, AWS S3 and the embedded
server.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamfn.core import stream_ids
from streamfn.sink.bucket import PREDICTIONS, Bucket

_PARTITION = re.compile(r"model=([^/]+)/date=(\d{4}-\d{2}-\d{2})/([^/]*)\.csv")


@dataclass(frozen=True)
class StoredObject:
    """One CSV object of the bucket and the partition its key names."""

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
    prefix = PREDICTIONS.prefix
    if model is not None:
        prefix += f"model={model}/"
        if date is not None:
            prefix += f"date={date}/"
    found = []
    for item in bucket.list_objects(prefix):
        match = _PARTITION.fullmatch(item["key"].removeprefix(PREDICTIONS.prefix))
        if match is None or (date is not None and match[2] != date):
            continue  # not a prediction object, or another day
        model, day, name = match.groups()
        first_id = stream_ids.parse(name.partition("_")[0]) or (0, 0)
        found.append(
            StoredObject(item["key"], item["size"], item["last_modified"], model, day, first_id)
        )
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
        text = bucket.get(stored.key).decode("utf-8")
        rows.extend(list(csv.DictReader(io.StringIO(text)))[: limit - len(rows)])
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
