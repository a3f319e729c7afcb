"""SINK_FORMAT=parquet as a lake: the infer function's objects on moto's S3 server, read by a
user's own tools with no glue (pyarrow.dataset with Hive partitioning, pandas, duckdb over s3://),
written once whatever the redeliveries, and a switch of format mid-day read as one by streamfn."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs
import pytest

from streamfn.core.settings import Settings
from streamfn.infer import handler
from streamfn.sink import catalog
from streamfn.sink.bucket import Bucket
from tests.conftest import S3_TEST_ENV, rows_in, s3_client
from tests.factories import batch_event, full_record, sqs_record

pytestmark = pytest.mark.slow

PER_MODEL = 6


@pytest.fixture
def lake(
    make_settings: Callable[..., Settings], s3_server: str
) -> tuple[Settings, list[dict[str, Any]]]:
    """Messages of two models, written as Parquet by the infer function, each delivered twice;
    then one more as CSV the same day (SINK_FORMAT switched)."""
    s3_client(s3_server).create_bucket(Bucket="predictions")
    settings = make_settings(SINK_FORMAT="parquet", AWS_ENDPOINT_URL_S3=s3_server, **S3_TEST_ENV)
    ctx = handler.build_context(settings)
    now = int(time.time() * 1000)
    records = []
    for i in range(PER_MODEL):
        for offset, model in ((0, "svm"), (1, "lightgbm")):
            data = [full_record(**{"Employee ID": f"e-{i}"})]
            if i % 2:
                data.append({**full_record(), "Mental Fatigue Score": None})
            records.append(sqs_record(f"{now + 2 * i + offset}-0", model, data, now))
    for batch in (records[:5], records[5:], records[3:9]):  # the last: redelivered
        assert handler.handle(batch_event(*batch), ctx) == {"batchItemFailures": []}
    switched = make_settings(SINK_FORMAT="csv", AWS_ENDPOINT_URL_S3=s3_server, **S3_TEST_ENV)
    extra = sqs_record(f"{now + 99}-0", "svm", [full_record()], now)
    assert handler.handle(batch_event(extra), handler.build_context(switched)) == {
        "batchItemFailures": []
    }
    return settings, [*records, extra]


def expected(records: list[dict[str, Any]], model: str | None = None) -> int:
    import orjson

    bodies = [orjson.loads(r["body"]) for r in records]
    return sum(len(b["data"]) for b in bodies if model is None or b["model"] == model)


def filesystem(endpoint: str) -> pyarrow.fs.S3FileSystem:
    return pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint.removeprefix("http://"), scheme="http",
        access_key="testing", secret_key="testing", region="us-east-1",
    )  # fmt: skip


def test_the_lake_reads_in_pyarrow_pandas_and_duckdb(
    lake: tuple[Settings, list[dict[str, Any]]], s3_server: str
) -> None:
    settings, records = lake
    # Written once each, whatever the redelivery, and readable by streamfn in either format.
    assert sum(rows_in(s3_client(s3_server)).values()) == expected(records)
    assert set(rows_in(s3_client(s3_server)).values()) == {1}
    fs = filesystem(s3_server)
    listed = fs.get_file_info(pyarrow.fs.FileSelector("predictions/predictions", recursive=True))
    parquet = [f.path for f in listed if f.path.endswith(".parquet")]
    assert parquet
    assert len(parquet) < len([f for f in listed if f.is_file])  # a CSV among them

    # pyarrow: the Parquet keys, Hive-partitioned (model, date from the path).
    dataset = ds.dataset(parquet, filesystem=fs, format="parquet", partitioning="hive",
                         partition_base_dir="predictions/predictions")  # fmt: skip
    table = dataset.to_table(filter=ds.field("model") == "svm")
    assert table.num_rows == expected(records[:-1], "svm")
    assert str(table.schema.field("received_at").type) == "timestamp[ms, tz=UTC]"
    assert str(table.schema.field("Mental Fatigue Score").type) == "double"

    # pandas, one model at a time (models have columns of their own).
    frame = pd.read_parquet("predictions/predictions/model=lightgbm", filesystem=fs)
    assert len(frame) == expected(records, "lightgbm")
    assert frame["Mental Fatigue Score"].isna().sum() == PER_MODEL // 2
    assert set(frame["prediction_label"]) <= {"Low", "Medium", "High"}

    # duckdb over s3://, its httpfs extension from PyPI (nothing downloaded at run time).
    import duckdb_extension_httpfs

    extension = next(Path(duckdb_extension_httpfs.__file__).parent.glob("extensions/*/httpfs*"))
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute(f"LOAD '{extension}'")
    con.execute(
        f"CREATE SECRET lake (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION 'us-east-1', "
        f"ENDPOINT '{s3_server.removeprefix('http://')}', URL_STYLE 'path', USE_SSL false)"
    )
    found = con.sql(
        "select model, count(*) as n, count(distinct message_id) as messages "
        "from read_parquet('s3://predictions/predictions/**/*.parquet', hive_partitioning=1) "
        "group by model order by model"
    ).fetchall()
    assert found == [("lightgbm", expected(records, "lightgbm"), PER_MODEL),
                     ("svm", expected(records[:-1], "svm"), PER_MODEL)]  # fmt: skip

    # streamfn's own reader lists both formats, as one partition per model and date.
    objects = catalog.list_objects(Bucket.from_settings(settings))
    assert {o.key.rsplit(".", 1)[1] for o in objects} == {"csv", "parquet"}
    assert sum(p.objects for p in catalog.partitions(objects)) == len(objects)
