"""The prediction rows as CSV: one row per record, encoded on the hot path.

Rows are encoded by the C `csv` writer from prebuilt lists (RFC 4180: CRLF line ends, fields
quoted only when needed), so that any Employee ID survives a round trip. Times are written as
ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from streamfn.features import CLASS_LABELS, EMPLOYEE_ID, FEATURE_NAMES
from streamfn.times import iso_ms

CSV_COLUMNS: tuple[str, ...] = (
    "message_id",
    "record_index",
    "model",
    "registered_model",
    "model_version",
    "prediction",
    "prediction_label",
    "received_at",
    "predicted_at",
    "imputed",
    EMPLOYEE_ID,
    *FEATURE_NAMES,
)
IMPUTED_SEPARATOR = "|"


class Row(NamedTuple):
    """One predicted record; a NamedTuple so that building thousands per batch stays cheap."""

    message_id: str
    record_index: int
    model: str
    registered_model: str
    model_version: str
    prediction: int
    received_at: int  # epoch ms
    predicted_at: int  # epoch ms
    record: Mapping[str, object]  # canonical: feature names and optionally "Employee ID"


def _cells(rows: Sequence[Row]) -> Iterator[list[object]]:
    # A batch shares a few timestamps: format each distinct one once.
    stamps: dict[int, str] = {}
    labels = CLASS_LABELS
    names = FEATURE_NAMES
    # Plain unpacking: cheaper than NamedTuple attribute access on this path.
    for message_id, index, model, registered, version, klass, received, predicted, record in rows:
        if not 0 <= klass < len(labels):
            raise ValueError(f"prediction {klass!r} of {message_id}[{index}] is not a class")
        received_s = stamps.get(received) or stamps.setdefault(received, iso_ms(received))
        predicted_s = stamps.get(predicted) or stamps.setdefault(predicted, iso_ms(predicted))
        get = record.get
        # None (absent or null) is written by the csv module as an empty cell.
        features = [get(name) for name in names]
        imputed = ""
        if None in features:
            imputed = IMPUTED_SEPARATOR.join(
                n for n, v in zip(names, features, strict=True) if v is None
            )
        yield [
            message_id, index, model, registered, version, klass, labels[klass],
            received_s, predicted_s, imputed, get(EMPLOYEE_ID), *features,
        ]  # fmt: skip


def encode_csv(rows: Sequence[Row]) -> bytes:
    """Header plus one CSV line per row, UTF-8, columns as CSV_COLUMNS."""
    buffer = io.StringIO()
    # CRLF (RFC 4180, the csv default) is also what makes the writer quote a lone CR in a field.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_cells(rows))
    return buffer.getvalue().encode("utf-8")
