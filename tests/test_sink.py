"""The CSV output (SPEC section 6): encoding, object keys, and S3 writes against moto."""

from __future__ import annotations

import csv
import datetime
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.server import ThreadedMotoServer

from streamfn.config import Settings, load_settings
from streamfn.features import FEATURE_NAMES
from streamfn.sink import (
    CSV_COLUMNS,
    Row,
    S3Sink,
    SinkUnavailableError,
    encode_csv,
    iso_ms,
    make_s3_client,
    object_key,
)
from tests.conftest import free_port
from tests.factories import full_record

BUCKET = "predictions"
RECEIVED = 1764141569123  # 2025-11-26T07:19:29.123Z
PREDICTED = 1764141569405
# Values chosen to exercise number formatting (7.25, 1.5, 3.0) in the exact-line assertions.
FULL: dict[str, object] = full_record(
    **{
        "Resource Allocation": 3.0,
        "Work Hours per Week": 45,
        "Sleep Hours": 7.25,
        "Work-Life Balance Score": 3,
        "Team Size": 12,
        "Recognition Frequency": 1.5,
    }
)


def row(record: dict[str, object], prediction: int = 1, index: int = 0) -> Row:
    """A row of message 1764141569123-0 predicted by lightgbm version 3."""
    return Row(
        "1764141569123-0", index, "lightgbm", "LightGBM_Classifier", "3",
        prediction, RECEIVED, PREDICTED, record,
    )  # fmt: skip


def lines(body: bytes) -> list[str]:
    """The CSV lines of a body without quoted line breaks."""
    text = body.decode("utf-8")
    assert text.endswith("\r\n")
    return text.split("\r\n")[:-1]


def parsed(body: bytes) -> list[list[str]]:
    """The body read back by the csv module."""
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with fake credentials, blind to the developer's environment and ~/.aws."""
    for name in (*Settings.model_fields, "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return lambda **overrides: load_settings(**{**fake, **overrides})


@pytest.fixture
def sink(make_settings: Callable[..., Settings]) -> Iterator[S3Sink]:
    """A sink on an existing bucket of moto's in-process S3."""
    with mock_aws():
        target = S3Sink.from_settings(make_settings())
        target.ensure_bucket()
        yield target


# ---------------------------------------------------------------- encoding


def test_columns_are_the_spec_order() -> None:
    assert CSV_COLUMNS == (
        "message_id", "record_index", "model", "registered_model", "model_version",
        "prediction", "prediction_label", "received_at", "predicted_at", "imputed",
        "Employee ID", "Gender", "Company Type", "WFH Setup Available", "Designation",
        "Resource Allocation", "Mental Fatigue Score", "Work Hours per Week", "Sleep Hours",
        "Work-Life Balance Score", "Manager Support Score", "Deadline Pressure Score",
        "Team Size", "Recognition Frequency",
    )  # fmt: skip
    assert encode_csv([]) == (",".join(CSV_COLUMNS) + "\r\n").encode()


def test_full_record_row() -> None:
    body = encode_csv([row(FULL, prediction=2, index=4)])
    assert lines(body)[1] == (
        "1764141569123-0,4,lightgbm,LightGBM_Classifier,3,2,High,"
        "2025-11-26T07:19:29.123Z,2025-11-26T07:19:29.405Z,,fffe32003000360033003200,"
        "Female,Service,No,2,3.0,3.8,45,7.25,3,4,2,12,1.5"
    )


def test_partial_record_row_names_imputed_features_in_table_order() -> None:
    record = {"Team Size": 7, "Gender": "Male", "Sleep Hours": None, "Designation": 1}
    body = encode_csv([row(record, prediction=0)])
    cells = dict(zip(CSV_COLUMNS, parsed(body)[1], strict=True))
    absent = [n for n in FEATURE_NAMES if n not in ("Gender", "Designation", "Team Size")]
    assert cells["imputed"] == "|".join(absent)
    assert cells["imputed"].startswith("Company Type|WFH Setup Available|Resource Allocation|")
    assert cells["Employee ID"] == ""
    assert [cells[n] for n in absent] == [""] * 10
    assert (cells["Gender"], cells["Designation"], cells["Team Size"]) == ("Male", "1", "7")
    assert cells["prediction_label"] == "Low"


def test_labels_follow_the_classes() -> None:
    body = encode_csv([row(FULL, prediction=p, index=p) for p in (0, 1, 2)])
    assert [r[5:7] for r in parsed(body)[1:]] == [["0", "Low"], ["1", "Medium"], ["2", "High"]]


@pytest.mark.parametrize("prediction", [-1, 3])
def test_a_prediction_outside_the_classes_is_refused(prediction: int) -> None:
    with pytest.raises(ValueError, match="not a class"):
        encode_csv([row(FULL, prediction=prediction)])


def test_times_are_iso_utc_with_milliseconds() -> None:
    assert iso_ms(RECEIVED) == "2025-11-26T07:19:29.123Z"
    assert iso_ms(1764141569005) == "2025-11-26T07:19:29.005Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    stamps = pd.to_datetime(pd.Series([iso_ms(RECEIVED), iso_ms(PREDICTED)]), utc=True)
    assert [s.value // 1_000_000 for s in stamps] == [RECEIVED, PREDICTED]


AWKWARD_IDS = [
    "Smith, John",
    'say "hi"',
    "line1\nline2",
    "carriage\rreturn",
    "crlf\r\nend",
    "Zoë Ω 雪",
    " padded ",
    "=1+1",
    "",
]


def test_awkward_employee_ids_round_trip_through_csv_reader() -> None:
    rows = [row({**FULL, "Employee ID": e}, index=i) for i, e in enumerate(AWKWARD_IDS)]
    body = encode_csv(rows)
    assert b'"Smith, John"' in body
    assert b'"say ""hi"""' in body
    assert "Zoë Ω 雪".encode() in body
    assert not body.startswith(b"\xef\xbb\xbf")  # no BOM
    back = parsed(body)
    assert len(back) == 1 + len(AWKWARD_IDS)
    assert [r[10] for r in back[1:]] == AWKWARD_IDS
    assert all(len(r) == len(CSV_COLUMNS) for r in back)


def test_round_trip_through_pandas() -> None:
    rows = [row({**FULL, "Employee ID": e}, index=i) for i, e in enumerate(AWKWARD_IDS)]
    rows.append(row({"Sleep Hours": 6}, index=len(rows)))
    frame = pd.read_csv(io.BytesIO(encode_csv(rows)), dtype=str, keep_default_na=False)
    assert tuple(frame.columns) == CSV_COLUMNS
    assert frame["Employee ID"].tolist() == [*AWKWARD_IDS, ""]
    assert frame["record_index"].tolist() == [str(i) for i in range(len(rows))]
    assert frame["Recognition Frequency"].tolist() == ["1.5"] * len(AWKWARD_IDS) + [""]
    numbers = pd.read_csv(io.BytesIO(encode_csv(rows)))
    assert numbers["Work Hours per Week"].iloc[0] == 45
    assert numbers["imputed"].iloc[-1] == "|".join(n for n in FEATURE_NAMES if n != "Sleep Hours")


def test_a_large_mixed_batch_encodes_every_row() -> None:
    partial = {k: v for k, v in FULL.items() if k != "Sleep Hours"}
    rows = [row(FULL if i % 2 else partial, i % 3, i) for i in range(1000)]
    parsed = list(csv.DictReader(io.StringIO(encode_csv(rows).decode())))
    assert [int(r["record_index"]) for r in parsed] == list(range(1000))
    assert [r["imputed"] for r in parsed[:2]] == ["Sleep Hours", ""]


# ---------------------------------------------------------------- object keys

DAY = datetime.date(2025, 11, 26)


def test_key_is_hive_partitioned_and_starts_with_the_first_id() -> None:
    key = object_key("svm", DAY, ["1764141569200-0", "1764141569123-1"])
    assert key.startswith("predictions/model=svm/date=2025-11-26/1764141569123-1_")
    name = key.rsplit("/", 1)[1]
    assert name.endswith(".csv")
    assert len(name) == len("1764141569123-1_") + 16 + len(".csv")


def test_key_is_deterministic_and_order_insensitive() -> None:
    ids = ["1764141569123-0", "1764141569124-0", "1764141569200-3"]
    key = object_key("knn", DAY, ids)
    assert object_key("knn", DAY, list(ids)) == key
    assert object_key("knn", DAY, ids[::-1]) == key
    assert object_key("knn", DAY, [*ids, ids[0]]) == key  # a duplicate changes nothing


def test_different_ids_or_partitions_give_different_keys() -> None:
    ids = ["1764141569123-0", "1764141569124-0"]
    key = object_key("knn", DAY, ids)
    others = {
        object_key("knn", DAY, ids[:1]),
        object_key("knn", DAY, [*ids, "1764141569125-0"]),
        object_key("knn", DAY, ["1764141569123-0", "1764141569124-1"]),
        object_key("svm", DAY, ids),
        object_key("knn", DAY + datetime.timedelta(days=1), ids),
    }
    assert key not in others
    assert len(others) == 5


def test_stream_ids_sort_as_numbers() -> None:
    key = object_key("svm", DAY, ["10-0", "9-5", "9-10"])
    assert key.rsplit("/", 1)[1].startswith("9-5_")


def test_key_from_a_datetime_keeps_a_bare_date() -> None:
    moment = datetime.datetime(2025, 11, 26, 23, 59, tzinfo=datetime.UTC)
    assert "/date=2025-11-26/" in object_key("svm", moment, ["1-0"])


def test_key_cannot_escape_its_partition() -> None:
    key = object_key("svm", DAY, ["../evil/id"])
    assert key.count("/") == 3
    assert key.rsplit("/", 1)[1].startswith(".._evil_id_")
    with pytest.raises(ValueError, match="partition"):
        object_key("svm/../x", DAY, ["1-0"])
    with pytest.raises(ValueError, match="at least one"):
        object_key("svm", DAY, [])


# ---------------------------------------------------------------- S3 (moto)


def test_put_writes_one_whole_object(sink: S3Sink) -> None:
    body = encode_csv([row(FULL)])
    key = object_key("lightgbm", DAY, ["1764141569123-0"])
    assert sink.put(key, body) == f"s3://{BUCKET}/{key}"
    got = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/csv; charset=utf-8"


def test_exists(sink: S3Sink) -> None:
    assert sink.exists("predictions/model=svm/date=2025-11-26/a.csv") is False
    sink.put("predictions/model=svm/date=2025-11-26/a.csv", b"x")
    assert sink.exists("predictions/model=svm/date=2025-11-26/a.csv") is True
    assert sink.exists("predictions/model=svm/date=2025-11-26/b.csv") is False


def test_list_objects_under_a_prefix(sink: S3Sink) -> None:
    sink.put("predictions/model=svm/date=2025-11-26/a.csv", b"abc")
    sink.put("predictions/model=knn/date=2025-11-26/b.csv", b"de")
    sink.put("elsewhere/c.csv", b"f")
    listed = sink.list_objects()
    assert [(o["key"], o["size"]) for o in listed] == [
        ("predictions/model=knn/date=2025-11-26/b.csv", 2),
        ("predictions/model=svm/date=2025-11-26/a.csv", 3),
    ]
    assert all(isinstance(o["last_modified"], datetime.datetime) for o in listed)
    assert [o["key"] for o in sink.list_objects("predictions/model=svm/")] == [
        "predictions/model=svm/date=2025-11-26/a.csv"
    ]


def test_list_objects_follows_pages(sink: S3Sink) -> None:
    keys = [f"predictions/model=svm/date=2025-11-26/{i:04d}.csv" for i in range(1001)]
    for key in keys:
        sink.client.put_object(Bucket=BUCKET, Key=key, Body=b"")
    assert [o["key"] for o in sink.list_objects()] == keys


def test_ensure_bucket_is_idempotent(make_settings: Callable[..., Settings]) -> None:
    with mock_aws():
        sink = S3Sink.from_settings(make_settings(PREDICTIONS_BUCKET="fresh-bucket"))
        sink.ensure_bucket()
        sink.ensure_bucket()
        sink.put("predictions/x.csv", b"x")
        sink.ensure_bucket()
        assert sink.exists("predictions/x.csv")


def test_ensure_bucket_outside_us_east_1(make_settings: Callable[..., Settings]) -> None:
    with mock_aws():
        sink = S3Sink.from_settings(make_settings(AWS_DEFAULT_REGION="eu-west-1"))
        sink.ensure_bucket()
        location = sink.client.get_bucket_location(Bucket=BUCKET)
        assert location["LocationConstraint"] == "eu-west-1"


@pytest.mark.parametrize(
    ("code", "raises"), [("BucketAlreadyOwnedByYou", False), ("BucketAlreadyExists", True)]
)
def test_ensure_bucket_race(
    make_settings: Callable[..., Settings], code: str, raises: bool
) -> None:
    client = make_s3_client(make_settings())
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", "404", http_status_code=404)
        stub.add_client_error("create_bucket", code, http_status_code=409)
        if raises:
            with pytest.raises(SinkUnavailableError, match=code):
                S3Sink(client, BUCKET).ensure_bucket()
        else:
            S3Sink(client, BUCKET).ensure_bucket()
        stub.assert_no_pending_responses()


def test_exists_refuses_to_guess_on_access_denied(make_settings: Callable[..., Settings]) -> None:
    client = make_s3_client(make_settings())
    with Stubber(client) as stub:
        stub.add_client_error("head_object", "403", http_status_code=403)
        with pytest.raises(SinkUnavailableError, match="403"):
            S3Sink(client, BUCKET).exists("predictions/a.csv")


def test_put_to_a_missing_bucket_is_an_error(make_settings: Callable[..., Settings]) -> None:
    with mock_aws():
        sink = S3Sink.from_settings(make_settings(PREDICTIONS_BUCKET="never-created"))
        with pytest.raises(SinkUnavailableError, match="NoSuchBucket"):
            sink.put("predictions/a.csv", b"x")


# ---------------------------------------------------------------- client, endpoint, outage


def test_client_honours_an_endpoint(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://localhost:{port}"  # a name, which virtual hosting would prefix
        sink = S3Sink.from_settings(make_settings(AWS_ENDPOINT_URL_S3=endpoint))
        assert sink.client.meta.endpoint_url == endpoint
        assert sink.client.meta.config.request_checksum_calculation == "when_required"
        sink.ensure_bucket()
        sink.put("predictions/a.csv", b"over http")
        other = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        assert other.get_object(Bucket=BUCKET, Key="predictions/a.csv")["Body"].read() == (
            b"over http"
        )
        url = sink.client.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "predictions/a.csv"}
        )
        assert url.startswith(f"{endpoint}/{BUCKET}/predictions/a.csv?")  # path style
    finally:
        server.stop()


def test_client_uses_region_and_credentials_of_settings(
    make_settings: Callable[..., Settings],
) -> None:
    client = make_s3_client(
        make_settings(AWS_ACCESS_KEY_ID="AKIDSETTINGS", AWS_DEFAULT_REGION="eu-west-1")
    )
    assert client.meta.region_name == "eu-west-1"
    query = _presigned_query(client)
    assert query["X-Amz-Credential"][0].startswith("AKIDSETTINGS/")
    assert "/eu-west-1/s3/" in query["X-Amz-Credential"][0]
    assert "X-Amz-Security-Token" not in query


def test_client_keeps_the_session_token_of_its_environment_key(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "the-token")
    same = make_settings(AWS_ACCESS_KEY_ID="ASIATEMPORARY", AWS_SECRET_ACCESS_KEY="secret")
    assert _presigned_query(make_s3_client(same))["X-Amz-Security-Token"] == ["the-token"]
    # Another key does not borrow a token that belongs to the environment's key.
    other = make_settings(AWS_ACCESS_KEY_ID="AKIDOTHER")
    assert "X-Amz-Security-Token" not in _presigned_query(make_s3_client(other))


def _presigned_query(client: object) -> dict[str, list[str]]:
    url = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": BUCKET, "Key": "k"}
    )
    return parse_qs(urlsplit(url).query)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put("predictions/a.csv", b"x"),
        lambda s: s.exists("predictions/a.csv"),
        lambda s: s.ensure_bucket(),
        lambda s: s.list_objects(),
    ],
    ids=["put", "exists", "ensure_bucket", "list_objects"],
)
def test_outage_surfaces_within_seconds(
    make_settings: Callable[..., Settings], call: Callable[[S3Sink], object]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    sink = S3Sink.from_settings(make_settings(AWS_ENDPOINT_URL_S3=dead))
    start = time.monotonic()
    with pytest.raises(SinkUnavailableError, match=re.escape(dead)) as caught:
        call(sink)
    assert time.monotonic() - start < 10
    assert caught.value.__cause__ is not None
