"""`streamfn results` against moto's S3 server: partitions, newest rows, downloads, errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamfn.models.schemas import seed_schema
from streamfn.sink import catalog
from streamfn.sink.bucket import Bucket
from streamfn.sink.formats import csv
from streamfn.sink.layout import PREDICTIONS, object_key
from streamfn.sink.rows import Row
from tests.conftest import S3_TEST_ENV, s3_client
from tests.factories import full_record

SEED = seed_schema("lightgbm", "LightGBM_Classifier", "3")


def write_batch(sink: Bucket, model: str, day: dt.date, first_ms: int, records: int) -> str:
    """One object as the infer function writes it: `records` one-record messages."""
    ids = [f"{first_ms + i}-0" for i in range(records)]
    rows = [
        Row(
            i,
            0,
            model,
            "Reg",
            "2",
            n % 3,
            first_ms,
            first_ms + 5,
            full_record(**{"Employee ID": i}),
        )
        for n, i in enumerate(ids)
    ]
    key = object_key(PREDICTIONS, model, day, ids, csv.FORMAT.suffix)
    sink.put(key, csv.encode(SEED, rows), csv.FORMAT.content_type)
    return key


@pytest.fixture
def filled(s3_server: str) -> Bucket:
    """The predictions bucket with 3 svm objects over two days and 1 knn object."""
    client = s3_client(s3_server)
    client.create_bucket(Bucket="predictions")
    sink = Bucket(client, "predictions")
    write_batch(sink, "svm", dt.date(2026, 11, 26), 1_000, 2)
    write_batch(sink, "svm", dt.date(2026, 11, 27), 2_000, 3)
    write_batch(sink, "knn", dt.date(2026, 11, 27), 3_000, 1)
    write_batch(sink, "svm", dt.date(2026, 11, 27), 4_000, 4)
    sink.put("predictions/notes.txt", b"not an object of ours", "text/plain")
    return sink


def test_objects_partitions_and_newest_rows(filled: Bucket) -> None:
    objects = catalog.list_objects(filled)
    assert len(objects) == 4  # notes.txt is not a prediction object
    summary = [(p.model, p.date, p.objects) for p in catalog.partitions(objects)]
    assert summary == [("svm", "2026-11-27", 2), ("knn", "2026-11-27", 1), ("svm", "2026-11-26", 1)]
    assert [o.key for o in catalog.list_objects(filled, "svm", "2026-11-26")] == [objects[0].key]
    rows = catalog.newest_rows(filled, objects, 6)
    # The newest object (4 rows), the knn one before it (1 row), then 1 of 2000-0's 3 rows.
    expected = ["4000-0", "4001-0", "4002-0", "4003-0", "3000-0", "2000-0"]
    assert [r["message_id"] for r in rows] == expected


def test_download_keeps_the_partitions(filled: Bucket, tmp_path: Path) -> None:
    objects = catalog.list_objects(filled, "svm")
    written = catalog.download(filled, objects, tmp_path)
    assert sorted(p.relative_to(tmp_path).parts[:3] for p in written) == [
        ("predictions", "model=svm", "date=2026-11-26"),
        ("predictions", "model=svm", "date=2026-11-27"),
        ("predictions", "model=svm", "date=2026-11-27"),
    ]
    assert all(p.read_bytes() == filled.get(o.key) for p, o in zip(written, objects, strict=True))


def run_results(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **S3_TEST_ENV, "AWS_ENDPOINT_URL_S3": endpoint, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "streamfn.cli", "results", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_lists_shows_and_downloads(filled: Bucket, s3_server: str, tmp_path: Path) -> None:
    done = run_results(s3_server, "--rows", "3", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "2026-11-26" in done.stdout
    assert "4002-0" in done.stdout
    assert "4003-0" not in done.stdout  # three rows only
    assert "downloaded 4 objects" in done.stderr
    assert len(list(tmp_path.rglob("*.csv"))) == 4


def test_cli_on_an_empty_bucket_and_on_no_bucket(s3_server: str) -> None:
    s3_client(s3_server).create_bucket(Bucket="predictions")
    empty = run_results(s3_server)
    assert empty.returncode == 0
    assert "no prediction objects" in empty.stderr
    elsewhere = subprocess.run(
        [sys.executable, "-m", "streamfn.cli", "results"],
        env={**os.environ, **S3_TEST_ENV, "AWS_ENDPOINT_URL_S3": s3_server,
             "PREDICTIONS_BUCKET": "no-such-bucket"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert elsewhere.returncode == 3  # a configuration error: S3 answered, the bucket is not there
    assert "NoSuchBucket" in elsewhere.stderr
    assert ".streamfn/env" in elsewhere.stderr
