"""The prediction rows as CSV: one row per record, columns per model, encoded on the hot path.

A seed model (its inputs are the burn-out feature table) keeps the seed's columns:
  message_id, record_index, model, registered_model, model_version, prediction,
  prediction_label, received_at, predicted_at, imputed, Employee ID, then the 13 features.
Any other model: the same leading columns without the prediction, its inputs in signature
order, then prediction and prediction_label. With OUTPUT_PROBABILITIES, one `proba_<label>`
column per class follows. A challenger's shadow rows end with `champion_version` and
`champion_prediction`.

Rows are encoded by the C `csv` writer from prebuilt lists (RFC 4180: CRLF line ends, fields
quoted only when needed), so that any Employee ID survives a round trip. Times are written as
ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from streamfn.core.clock import iso_ms
from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import EMPLOYEE_ID, FEATURE_NAMES

IDENTITY = ("message_id", "record_index", "model", "registered_model", "model_version")
PREDICTION = ("prediction", "prediction_label")
TIMES = ("received_at", "predicted_at", "imputed", EMPLOYEE_ID)
CSV_COLUMNS: tuple[str, ...] = (*IDENTITY, *PREDICTION, *TIMES, *FEATURE_NAMES)
CHAMPION = ("champion_version", "champion_prediction")
IMPUTED_SEPARATOR = "|"


class Row(NamedTuple):
    """One predicted record; a NamedTuple so that building thousands per batch stays cheap."""

    message_id: str
    record_index: int
    model: str
    registered_model: str
    model_version: str
    prediction: Any  # a class, or a regressor's number
    received_at: int  # epoch ms
    predicted_at: int  # epoch ms
    record: Mapping[str, object]  # canonical: the model's inputs and optionally "Employee ID"
    probabilities: Sequence[float] = ()  # per class, when probabilities are written
    champion: tuple[str, Any] | tuple[()] = ()  # a shadow row's champion version and prediction


def columns(
    schema: ModelSchema, proba_labels: Sequence[str] = (), shadow: bool = False
) -> tuple[str, ...]:
    """The header of a model's objects (of its shadow objects with `shadow`)."""
    extra = (*(f"proba_{label}" for label in proba_labels), *(CHAMPION if shadow else ()))
    if schema.seed_layout:
        return (*CSV_COLUMNS, *extra)
    return (*IDENTITY, *TIMES, *schema.names, *PREDICTION, *extra)


def _label(schema: ModelSchema, row: Row) -> str:
    if schema.labels and str(row.prediction) not in schema.labels:
        raise ValueError(
            f"prediction {row.prediction!r} of {row.message_id}[{row.record_index}] is not a "
            "class its labels name"
        )
    return schema.label(row.prediction)


def _cells(schema: ModelSchema, rows: Sequence[Row]) -> Iterator[list[object]]:
    # A batch shares a few timestamps: format each distinct one once.
    stamps: dict[int, str] = {}
    names = schema.names
    seed = schema.seed_layout
    for row in rows:
        received, predicted = row.received_at, row.predicted_at
        received_s = stamps.get(received) or stamps.setdefault(received, iso_ms(received))
        predicted_s = stamps.get(predicted) or stamps.setdefault(predicted, iso_ms(predicted))
        get = row.record.get
        # None (absent or null) is written by the csv module as an empty cell.
        inputs = [get(name) for name in names]
        imputed = ""
        if None in inputs:
            imputed = IMPUTED_SEPARATOR.join(
                n for n, v in zip(names, inputs, strict=True) if v is None
            )
        identity = row[:5]
        times = (received_s, predicted_s, imputed, get(EMPLOYEE_ID))
        prediction = (row.prediction, _label(schema, row))
        if seed:
            yield [*identity, *prediction, *times, *inputs, *row.probabilities, *row.champion]
        else:
            yield [*identity, *times, *inputs, *prediction, *row.probabilities, *row.champion]


def encode_csv(
    schema: ModelSchema, rows: Sequence[Row], proba_labels: Sequence[str] = (), shadow: bool = False
) -> bytes:
    """Header plus one CSV line per row, UTF-8."""
    buffer = io.StringIO()
    # CRLF (RFC 4180, the csv default) is also what makes the writer quote a lone CR in a field.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns(schema, proba_labels, shadow))
    writer.writerows(_cells(schema, rows))
    return buffer.getvalue().encode("utf-8")
