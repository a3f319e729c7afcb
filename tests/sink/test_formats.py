"""The row formats (SINK_FORMAT): the same rows read back the same from CSV and Parquet, typed
Parquet columns, and a bucket holding both formats read as one."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfn.core.settings import Settings
from streamfn.models.schemas import Column, ModelSchema, seed_schema
from streamfn.sink import catalog
from streamfn.sink.bucket import Bucket
from streamfn.sink.formats.base import format_named
from streamfn.sink.layout import PREDICTIONS, object_key
from streamfn.sink.rows import Row
from tests.conftest import S3_TEST_ENV
from tests.factories import full_record

SEED = seed_schema("svm", "SVC", "1")
# A model of someone else's: inputs of every kind, a regressor.
OTHER = ModelSchema("spend", "Spend", "4", (
    Column("tenure", "integer"), Column("amount", "number"), Column("plan", "string"),
    Column("active", "boolean"),
), output="number")  # fmt: skip
RECEIVED, PREDICTED = 1764141569123, 1764141569405


def seed_rows(count: int, proba: bool = False) -> list[Row]:
    rows = []
    for i in range(count):
        record = full_record(**{"Employee ID": f"e-{i}"})
        if i % 3 == 0:
            record["Mental Fatigue Score"] = None  # imputed by the model
        rows.append(Row(f"17641415691{i:02d}-0", i % 2, "svm", "SVC", "1", i % 3, RECEIVED,
                        PREDICTED, record, (0.2, 0.3, 0.5) if proba else ()))  # fmt: skip
    return rows


def other_rows() -> list[Row]:
    # 300 as JSON gives an int: a double column cannot tell 300 from 300.0, and reads it back
    # as the CSV holds the int (a record holding 300.0 would read "300", its CSV "300.0").
    records = [{"tenure": 3, "amount": 12.5, "plan": "gold", "active": True},
               {"tenure": None, "amount": 300, "plan": None, "active": False}]  # fmt: skip
    return [Row(f"9-{i}", 0, "spend", "Spend", "4", 41.25 * (i + 1), RECEIVED, PREDICTED, r)
            for i, r in enumerate(records)]  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "rows", "labels", "shadow"),
    [
        (SEED, seed_rows(7), (), False),
        (SEED, seed_rows(5, proba=True), ("Low", "Medium", "High"), False),
        (SEED, [r._replace(champion=("2", 1)) for r in seed_rows(3)], (), True),
        (OTHER, other_rows(), (), False),
    ],
    ids=["seed", "probabilities", "shadow", "regressor"],
)
def test_both_formats_read_back_the_same_header_and_cells(
    schema: ModelSchema, rows: list[Row], labels: tuple[str, ...], shadow: bool
) -> None:
    csv, parquet = format_named("csv"), format_named("parquet")
    written = csv.table(csv.encode(schema, rows, labels, shadow))
    assert parquet.table(parquet.encode(schema, rows, labels, shadow)) == written


def test_parquet_columns_are_typed_and_the_key_holds_the_model() -> None:
    body = format_named("parquet").encode(OTHER, other_rows(), (), False)
    found = pq.read_table(io.BytesIO(body))
    types = dict(zip(found.column_names, found.schema.types, strict=True))
    assert "model" not in types  # a Hive partition of the key, model=<api>
    assert types["received_at"] == pa.timestamp("ms", tz="UTC")
    assert (types["tenure"], types["amount"], types["plan"], types["active"]) == (
        pa.int64(), pa.float64(), pa.string(), pa.bool_())  # fmt: skip
    assert (types["prediction"], types["record_index"]) == (pa.float64(), pa.int64())
    assert found.column("tenure").to_pylist() == [3, None]
    assert pq.ParquetFile(io.BytesIO(body)).metadata.num_row_groups == 1
    classes = pq.read_table(io.BytesIO(format_named("parquet").encode(SEED, seed_rows(3), (),
                                                                       False)))  # fmt: skip
    assert classes.schema.field("prediction").type == pa.string()  # a class, as its text
    assert classes.column("received_at").to_pylist()[0] == dt.datetime(
        2025, 11, 26, 7, 19, 29, 123000, tzinfo=dt.UTC)  # fmt: skip


def test_an_integer_past_int64_is_a_number_or_a_named_error() -> None:
    huge = 2**64 - 1  # ingest lets a JSON integer this large through to an unbounded input
    row = other_rows()[0]
    fine = row._replace(record={**row.record, "amount": huge})
    body = format_named("parquet").encode(OTHER, [fine], (), False)
    assert pq.read_table(io.BytesIO(body)).column("amount").to_pylist() == [float(huge)]
    wrong = row._replace(record={**row.record, "tenure": huge})
    with pytest.raises(ValueError, match="tenure"):
        format_named("parquet").encode(OTHER, [wrong], (), False)


def test_frames_of_both_formats_agree(s3: Any) -> None:
    text = ["message_id", "model_version", "prediction", "Employee ID", "Gender"]
    rows = seed_rows(9)
    frames = [fmt.frame([fmt.encode(SEED, rows[:4], (), False),
                         fmt.encode(SEED, rows[4:], (), False)], text)
              for fmt in map(format_named, ("csv", "parquet"))]  # fmt: skip
    csv_frame, parquet_frame = frames
    assert list(csv_frame.columns) == list(parquet_frame.columns)
    for name in text:
        assert csv_frame[name].tolist() == parquet_frame[name].tolist(), name
    assert csv_frame["received_at"].tolist() == parquet_frame["received_at"].tolist()
    fatigue = "Mental Fatigue Score"
    assert csv_frame[fatigue].isna().tolist() == parquet_frame[fatigue].isna().tolist()


def test_a_bucket_holding_both_formats_reads_as_one(
    s3: Any, make_settings: Callable[..., Settings]
) -> None:
    bucket = Bucket.from_settings(make_settings(**S3_TEST_ENV))
    day = dt.date(2025, 11, 26)
    rows = seed_rows(6)
    for fmt, part in zip(map(format_named, ("csv", "parquet")), (rows[:2], rows[2:]), strict=True):
        key = object_key(PREDICTIONS, "svm", day, [r.message_id for r in part], fmt.suffix)
        bucket.put(key, fmt.encode(SEED, part, (), False), fmt.content_type)
    bucket.put("predictions/model=svm/date=2025-11-26/notes.txt", b"not an object", "text/plain")
    objects = catalog.list_objects(bucket, "svm", "2025-11-26")
    assert sorted(o.key.rsplit(".", 1)[1] for o in objects) == ["csv", "parquet"]
    assert [(p.model, p.objects) for p in catalog.partitions(objects)] == [("svm", 2)]
    shown = catalog.newest_rows(bucket, objects, 10)
    assert sorted(r["message_id"] for r in shown) == sorted(r.message_id for r in rows)
