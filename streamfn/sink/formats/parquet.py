"""Parquet row objects (SINK_FORMAT=parquet): the CSV's columns, typed, one row group an object.

Types: the model's inputs as their signature says (number → double, integer → int64, string →
string, boolean → bool), `received_at` and `predicted_at` as UTC timestamps (ms), `record_index`
as int64, a classifier's `prediction` as its class in text (what the CSV holds, and what rows of
models with text classes hold too), a regressor's as a double, `proba_<label>` as doubles, the
rest as strings.

The `model` column is not in the file: the key holds it as a Hive partition (`model=<api>`), and
a file holding it too breaks `pandas.read_parquet` of the lake (the partition's dictionary type
clashes with the file's string). The file's metadata names the model, and `table` puts the
column back where the CSV has it. zstd compresses best here at about snappy's cost; the Arrow
schema blob is left out (the Parquet types give the same Arrow types back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamfn.core.clock import iso_ms
from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import EMPLOYEE_ID
from streamfn.sink.formats.base import Format
from streamfn.sink.rows import TIME_COLUMNS, Row, columns, imputed, label_of, reason_columns

if TYPE_CHECKING:
    import pandas as pd

PARTITION_COLUMN = "model"  # in the key, not in the file
MODEL_METADATA = "streamfn.model"
COMPRESSION = "zstd"
UTC_MS = pa.timestamp("ms", tz="UTC")
_KINDS: dict[str, pa.DataType] = {
    "number": pa.float64(), "integer": pa.int64(), "string": pa.string(), "boolean": pa.bool_(),
}  # fmt: skip


def _type(schema: ModelSchema, name: str, inputs: dict[str, pa.DataType]) -> pa.DataType:
    if name in inputs:  # first: an input may be called anything
        return inputs[name]
    if name in ("prediction", "champion_prediction"):
        return pa.float64() if schema.output == "number" else pa.string()
    if name in TIME_COLUMNS:
        return UTC_MS
    if name == "record_index":
        return pa.int64()
    return pa.float64() if name.startswith(("proba_", "contribution_")) else pa.string()


def arrow_schema(
    schema: ModelSchema, proba_labels: Sequence[str] = (), shadow: bool = False, reasons: int = 0
) -> pa.Schema:
    """The file's columns: the CSV header's but `model`, typed."""
    inputs = {c.name: _KINDS[c.kind] for c in schema.columns}
    return pa.schema([pa.field(name, _type(schema, name, inputs))
                      for name in columns(schema, proba_labels, shadow, reasons)
                      if name != PARTITION_COLUMN])  # fmt: skip


def _values(
    schema: ModelSchema, rows: Sequence[Row], proba_labels: Sequence[str], reasons: int = 0
) -> dict[str, list[Any]]:
    """Column name -> values, one pass per column (twice as fast as rows turned into columns)."""
    records = [r.record for r in rows]
    inputs = {name: [record.get(name) for record in records] for name in schema.names}
    text = schema.output != "number"  # a class is written as text, as in the CSV
    labels = label_of(schema, rows)
    out: dict[str, list[Any]] = {
        "message_id": [r.message_id for r in rows],
        "record_index": [r.record_index for r in rows],
        "registered_model": [r.registered_model for r in rows],
        "model_version": [r.model_version for r in rows],
        "prediction": [str(r.prediction) if text else r.prediction for r in rows],
        "prediction_label": [labels[r.prediction] for r in rows],
        "received_at": [r.received_at for r in rows],
        "predicted_at": [r.predicted_at for r in rows],
        "imputed": [imputed(schema.names, values) for values in zip(*inputs.values(), strict=True)]
        if inputs
        else [""] * len(rows),
        EMPLOYEE_ID: [record.get(EMPLOYEE_ID) for record in records],
        "champion_version": [r.champion[0] if r.champion else None for r in rows],
        "champion_prediction": [
            None if not r.champion else str(r.champion[1]) if text else r.champion[1] for r in rows
        ],
    }
    for i, label in enumerate(proba_labels):
        out[f"proba_{label}"] = [r.probabilities[i] for r in rows]
    for i, name in enumerate(reason_columns(reasons)):
        out[name] = [r.reasons[i] if r.reasons else None for r in rows]
    return {**out, **inputs}


def _array(values: list[Any], field: pa.Field) -> pa.Array:
    """The values as the field's type. A JSON integer past int64 (ingest lets one through for an
    input without bounds) becomes the double it is in a number column; an integer column
    cannot hold it, and the error names the column."""
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, OverflowError) as error:
        if pa.types.is_floating(field.type):
            return pa.array([None if v is None else float(v) for v in values], type=field.type)
        raise ValueError(
            f"column {field.name!r}: a value does not fit {field.type}: {error}"
        ) from None


def encode(
    schema: ModelSchema,
    rows: Sequence[Row],
    proba_labels: Sequence[str] = (),
    shadow: bool = False,
    reasons: int = 0,
) -> bytes:
    """One Parquet file of the rows, in one row group."""
    target = arrow_schema(schema, proba_labels, shadow, reasons)
    values = _values(schema, rows, proba_labels, reasons)
    table = pa.Table.from_arrays([_array(values[f.name], f) for f in target], schema=target)
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, target, compression=COMPRESSION, store_schema=False) as writer:
        writer.write_table(table, row_group_size=max(1, table.num_rows))
        writer.add_key_value_metadata({MODEL_METADATA: rows[0].model if rows else schema.model})
    return sink.getvalue().to_pybytes()


def _read(body: bytes) -> pa.Table:
    """An object's table, `model` put back (from the file's metadata) where the CSV has it."""
    table = pq.read_table(pa.BufferReader(body))
    model = (table.schema.metadata or {}).get(MODEL_METADATA.encode())
    if model is not None and PARTITION_COLUMN not in table.column_names:
        where = table.column_names.index("record_index") + 1
        table = table.add_column(where, PARTITION_COLUMN, pa.array([model.decode()] * len(table)))
    return table.replace_schema_metadata(None)


def _cell(value: object) -> str:
    """A value as the CSV holds it: a whole float input as an int (JSON's 7 rather than 7.0,
    which a double cannot tell apart), a time as ISO-8601 UTC."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def table(body: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a Parquet object, as text, as the CSV of the same rows reads."""
    found = _read(body)
    cells = []
    for column in found.columns:
        if pa.types.is_timestamp(column.type):
            millis = column.cast(pa.int64()).to_pylist()
            cells.append(["" if m is None else iso_ms(m) for m in millis])
        else:
            cells.append([_cell(v) for v in column.to_pylist()])
    return found.column_names, [list(row) for row in zip(*cells, strict=True)]


def frame(bodies: Sequence[bytes], text: Sequence[str]) -> pd.DataFrame:
    """The rows of Parquet objects as one frame (columns of every object, by name), `text`
    columns as text, times as UTC datetimes."""
    joined = pa.concat_tables([_read(b) for b in bodies], promote_options="permissive")
    found = joined.to_pandas()
    for name in text:  # a regressor's prediction is a number in the file
        if name in found and not pa.types.is_string(joined.schema.field(name).type):
            found[name] = found[name].map(lambda v: None if v is None or v != v else str(v))
    return found


FORMAT = Format("parquet", encode, table, frame)
