"""`streamfn backtest`: score the rows already in the bucket again, with a candidate version.

A prediction row holds the record's inputs as the champion saw them, so the candidate sees the
same records: no replay through the stream. Objects are read a few at a time in parallel (each
GET is a round trip), in whatever format each was written (streamfn.sink.formats); the rows of
about `BATCH_ROWS` are read into one frame and predicted in one call.
Where a record got a label through POST /feedback (kept RESULT_TTL_S in Redis), both versions
are scored on it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from streamfn.core import plugins
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys
from streamfn.models.loaded import LoadedModel
from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import EMPLOYEE_ID
from streamfn.monitor import stats
from streamfn.sink.bucket import Bucket
from streamfn.sink.formats.base import format_named
from streamfn.sink.layout import PREDICTIONS, prefix

BATCH_ROWS = 50_000
# About what a row takes in an object (CSV, ~190 bytes; Parquet less): batches' sizes, roughly.
BYTES_PER_ROW = 150
READERS = 8


@dataclass
class Outcome:
    """What the candidate said of the rows, beside what was written."""

    rows: int = 0
    objects: int = 0
    agreeing: int = 0
    written: Counter[str] = field(default_factory=Counter)  # class -> rows, as written
    candidate: Counter[str] = field(default_factory=Counter)  # class -> rows, candidate's
    confusion: Counter[str] = field(default_factory=Counter)  # c:<written>:<candidate>
    labels: Counter[str] = field(default_factory=Counter)  # l:<true>:<written>, k: candidate's
    versions: Counter[str] = field(default_factory=Counter)  # the written rows' versions

    @property
    def agreement(self) -> float | None:
        """Share of the rows where the candidate predicts what was written."""
        return self.agreeing / self.rows if self.rows else None

    def scores(self) -> tuple[int, float | None, float | None, float | None, float | None]:
        """(labelled, written accuracy, written macro F1, candidate accuracy, candidate F1)."""
        written = {k: n for k, n in self.labels.items() if k.startswith("l:")}
        candidate = {"l:" + k[2:]: n for k, n in self.labels.items() if k.startswith("k:")}
        labelled, accuracy, f1 = stats.scores(written)
        _, candidate_accuracy, candidate_f1 = stats.scores(candidate)
        return labelled, accuracy, f1, candidate_accuracy, candidate_f1


def days(since_h: float | None, date: dt.date | None, now: dt.datetime) -> list[dt.date]:
    """The date partitions to read: one `date`, or every day the last `since_h` hours touch."""
    if date is not None:
        return [date]
    start = (now - dt.timedelta(hours=since_h or 24)).date()
    return [start + dt.timedelta(days=i) for i in range((now.date() - start).days + 1)]


def object_keys(bucket: Bucket, model: str, dates: Sequence[dt.date]) -> list[str]:
    """The prediction objects of a model on these dates, of every format."""
    keys = []
    for day in dates:
        listed = bucket.list_objects(prefix(PREDICTIONS, model, day))
        keys += [item["key"] for item in listed if plugins.format_name_of(item["key"])]
    return keys


TEXT_COLUMNS = ("message_id", "model_version", "prediction", EMPLOYEE_ID)


def text_columns(schema: ModelSchema) -> list[str]:
    """The columns read as text: those compared, and the model's text inputs."""
    text = [c.name for c in schema.columns if c.kind not in ("number", "integer")]
    return [*TEXT_COLUMNS, *text]


def frame_of_rows(schema: ModelSchema, rows: pd.DataFrame) -> pd.DataFrame:
    """The model's input frame from written rows, typed as the infer function types records."""
    columns: dict[str, np.ndarray] = {}
    for column in schema.columns:
        raw = rows[column.name] if column.name in rows else pd.Series([None] * len(rows))
        if column.kind in ("number", "integer"):
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
            has_missing = bool(np.isnan(values).any())
            integer = column.kind == "integer" and not has_missing
            columns[column.name] = values.astype(np.int64) if integer else values
        else:
            columns[column.name] = raw.to_numpy(dtype=object)
    return pd.DataFrame(columns, columns=list(schema.names))


def batches(
    bucket: Bucket, keys: Sequence[str], schema: ModelSchema, rows: int
) -> Iterator[tuple[int, pd.DataFrame]]:
    """(objects read, their rows) in batches of about `rows` rows (the last may be smaller)."""
    text = text_columns(schema)
    held: dict[str, list[bytes]] = {}  # format -> bodies
    size = 0
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="backtest-read") as pool:
        for done, (key, body) in enumerate(zip(keys, pool.map(bucket.get, keys), strict=True), 1):
            held.setdefault(str(plugins.format_name_of(key)), []).append(body)
            size += len(body) // BYTES_PER_ROW
            if size >= rows or done == len(keys):
                tables = [format_named(name).frame(bodies, text) for name, bodies in held.items()]
                yield done, pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
                held, size = {}, 0


def label_cells(
    redis: SyncClient | None, keys: Keys, rows: pd.DataFrame, predicted: list[str]
) -> Counter[str]:
    """The confusion cells of the labelled rows: written (l:) and candidate's (k:)."""
    if redis is None:
        return Counter()
    ids = rows["message_id"].unique().tolist()
    with redis.pipeline(transaction=False) as pipe:
        for message_id in ids:
            pipe.hgetall(keys.labels(message_id))
        found = dict(zip(ids, pipe.execute(), strict=True))
    cells: Counter[str] = Counter()
    columns = (rows[c] for c in ("message_id", "record_index", "prediction"))
    pairs = zip(*columns, predicted, strict=True)
    for message_id, index, written, candidate in pairs:
        truth = found[message_id].get(str(index).encode())
        if truth is not None:
            cells[f"l:{truth.decode()}:{written}"] += 1
            cells[f"k:{truth.decode()}:{candidate}"] += 1
    return cells


def backtest(
    candidate: LoadedModel, bucket: Bucket, objects: Sequence[str], redis: SyncClient | None,
    keys: Keys, since_ms: int | None = None, progress: Callable[[int, int], None] | None = None,
) -> Outcome:  # fmt: skip
    """Predict every row of these objects with the candidate, beside the written prediction
    (rows received before `since_ms` are left out)."""
    outcome = Outcome(objects=len(objects))
    for read, rows in batches(bucket, objects, candidate.schema, BATCH_ROWS):
        if since_ms is not None:
            rows = rows[rows["received_at"] >= pd.Timestamp(since_ms, unit="ms", tz="UTC")]
        if len(rows):
            predicted = [str(v) for v in candidate.predict(frame_of_rows(candidate.schema, rows))]
            tally(outcome, rows, predicted)
            outcome.labels.update(label_cells(redis, keys, rows, predicted))
        if progress is not None:
            progress(read, outcome.rows)
    return outcome


def tally(outcome: Outcome, rows: pd.DataFrame, predicted: list[str]) -> None:
    """Add a batch's rows to the outcome."""
    written = rows["prediction"].astype(str).tolist()
    outcome.rows += len(rows)
    outcome.agreeing += sum(a == b for a, b in zip(written, predicted, strict=True))
    outcome.written.update(written)
    outcome.candidate.update(predicted)
    outcome.confusion.update(f"c:{a}:{b}" for a, b in zip(written, predicted, strict=True))
    outcome.versions.update(rows["model_version"].astype(str))
