"""The prediction rows: one row per record, the columns of each model, whatever the format.

A seed model (its inputs are the burn-out feature table) keeps the seed's columns:
  message_id, record_index, model, registered_model, model_version, prediction,
  prediction_label, received_at, predicted_at, imputed, Employee ID, then the 13 features.
Any other model: the same leading columns without the prediction, its inputs in signature
order, then prediction and prediction_label. With OUTPUT_PROBABILITIES, one `proba_<label>`
column per class follows; with OUTPUT_EXPLANATIONS=N (a version with exact attribution),
`reason_1..N` then `contribution_1..N` (empty for a record EXPLAIN_SHARE left out). A
challenger's shadow rows end with `champion_version` and `champion_prediction`.

`values` gives each row's cells in that order, as Python values (a missing input as None, times
as the format stamps them): a format (streamfn.sink.formats) writes them as it writes its types.

Which runtime produced the rows (native or onnx, streamfn.models.runtimes) is said by the object,
not by a column, so that the seed's columns stay exactly section 6's: every row object carries
the S3 user metadata `model-runtime` (header `x-amz-meta-model-runtime`; `object_metadata`).
One object holds one model version's rows of one call, so one runtime produced all of them; a
shadow object's is the challenger's runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import EMPLOYEE_ID, FEATURE_NAMES

IDENTITY = ("message_id", "record_index", "model", "registered_model", "model_version")
PREDICTION = ("prediction", "prediction_label")
TIMES = ("received_at", "predicted_at", "imputed", EMPLOYEE_ID)
SEED_COLUMNS: tuple[str, ...] = (*IDENTITY, *PREDICTION, *TIMES, *FEATURE_NAMES)
CHAMPION = ("champion_version", "champion_prediction")
IMPUTED_SEPARATOR = "|"
RUNTIME_METADATA = "model-runtime"  # the user metadata naming the runtime that made the rows
# The columns holding epoch milliseconds (written as ISO-8601 UTC in CSV, timestamps in Parquet).
TIME_COLUMNS = frozenset({"received_at", "predicted_at"})


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
    # Its reason codes when explained: the N input names, then their N contributions.
    reasons: Sequence[Any] = ()


def reason_columns(count: int) -> tuple[str, ...]:
    """The reason code columns of OUTPUT_EXPLANATIONS=count."""
    return (*(f"reason_{i}" for i in range(1, count + 1)),
            *(f"contribution_{i}" for i in range(1, count + 1)))  # fmt: skip


def columns(
    schema: ModelSchema, proba_labels: Sequence[str] = (), shadow: bool = False, reasons: int = 0
) -> tuple[str, ...]:
    """The header of a model's objects (of its shadow objects with `shadow`)."""
    extra = (*(f"proba_{label}" for label in proba_labels), *reason_columns(reasons),
             *(CHAMPION if shadow else ()))  # fmt: skip
    if schema.seed_layout:
        return (*SEED_COLUMNS, *extra)
    return (*IDENTITY, *TIMES, *schema.names, *PREDICTION, *extra)


def object_metadata(runtime: str) -> dict[str, str]:
    """The user metadata of a row object whose rows `runtime` produced."""
    return {RUNTIME_METADATA: runtime}


def _label(schema: ModelSchema, row: Row) -> str:
    if schema.labels and str(row.prediction) not in schema.labels:
        raise ValueError(
            f"prediction {row.prediction!r} of {row.message_id}[{row.record_index}] is not a "
            "class its labels name"
        )
    return schema.label(row.prediction)


def label_of(schema: ModelSchema, rows: Sequence[Row]) -> dict[Any, str]:
    """Each prediction's label (a batch has few distinct classes: each is checked once)."""
    labels: dict[Any, str] = {}
    for row in rows:
        if row.prediction not in labels:
            labels[row.prediction] = _label(schema, row)
    return labels


def imputed(names: Sequence[str], inputs: Sequence[object]) -> str:
    """The inputs a record left out (the model imputes them), joined by IMPUTED_SEPARATOR."""
    if None not in inputs:
        return ""
    return IMPUTED_SEPARATOR.join(n for n, v in zip(names, inputs, strict=True) if v is None)


def epoch_ms(at_ms: int) -> int:
    """A time as it is kept: epoch milliseconds."""
    return at_ms


def values(
    schema: ModelSchema, rows: Sequence[Row], stamp: Callable[[int], object] = epoch_ms,
    reasons: int = 0,
) -> Iterator[list[Any]]:  # fmt: skip
    """Each row's cells in `columns` order: a missing input as None, each time as `stamp`
    gives it (one call per time, so that a format can write each distinct one once)."""
    names = schema.names
    seed = schema.seed_layout
    unexplained = (None,) * (2 * reasons)
    for row in rows:
        get = row.record.get
        inputs = [get(name) for name in names]
        identity = row[:5]
        times = (stamp(row.received_at), stamp(row.predicted_at), imputed(names, inputs),
                 get(EMPLOYEE_ID))  # fmt: skip
        prediction = (row.prediction, _label(schema, row))
        extra = (*row.probabilities, *((row.reasons or unexplained) if reasons else ()),
                 *row.champion)  # fmt: skip
        if seed:
            yield [*identity, *prediction, *times, *inputs, *extra]
        else:
            yield [*identity, *times, *inputs, *prediction, *extra]
