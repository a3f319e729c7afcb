"""The bucket: object keys, whole-object writes, reads, listings and outages, against moto."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.server import ThreadedMotoServer

from streamfn.core.settings import Settings, load_settings
from streamfn.sink.bucket import Bucket, BucketUnavailableError, make_s3_client
from tests.conftest import free_port

BUCKET = "predictions"


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
def sink(make_settings: Callable[..., Settings]) -> Iterator[Bucket]:
    """A sink on an existing bucket of moto's in-process S3."""
    with mock_aws():
        target = Bucket.from_settings(make_settings())
        target.ensure()
        yield target


def test_put_writes_one_whole_object(sink: Bucket) -> None:
    body = b"message_id\r\n1764141569123-0\r\n"
    key = "predictions/model=lightgbm/date=2025-11-26/1764141569123-0_0123456789abcdef.csv"
    assert sink.put(key, body, "text/csv; charset=utf-8") == f"s3://{BUCKET}/{key}"
    got = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/csv; charset=utf-8"


def test_exists(sink: Bucket) -> None:
    assert sink.exists("predictions/model=svm/date=2025-11-26/a.csv") is False
    sink.put("predictions/model=svm/date=2025-11-26/a.csv", b"x", "text/csv")
    assert sink.exists("predictions/model=svm/date=2025-11-26/a.csv") is True
    assert sink.exists("predictions/model=svm/date=2025-11-26/b.csv") is False


def test_list_objects_under_a_prefix(sink: Bucket) -> None:
    sink.put("predictions/model=svm/date=2025-11-26/a.csv", b"abc", "text/csv")
    sink.put("predictions/model=knn/date=2025-11-26/b.csv", b"de", "text/csv")
    sink.put("elsewhere/c.csv", b"f", "text/csv")
    listed = sink.list_objects("predictions/")
    assert [(o["key"], o["size"]) for o in listed] == [
        ("predictions/model=knn/date=2025-11-26/b.csv", 2),
        ("predictions/model=svm/date=2025-11-26/a.csv", 3),
    ]
    assert all(isinstance(o["last_modified"], datetime.datetime) for o in listed)
    assert [o["key"] for o in sink.list_objects("predictions/model=svm/")] == [
        "predictions/model=svm/date=2025-11-26/a.csv"
    ]


def test_list_objects_follows_pages(sink: Bucket) -> None:
    keys = [f"predictions/model=svm/date=2025-11-26/{i:04d}.csv" for i in range(1001)]
    for key in keys:
        sink.client.put_object(Bucket=BUCKET, Key=key, Body=b"")
    assert [o["key"] for o in sink.list_objects("predictions/")] == keys


def test_ensure_bucket_is_idempotent(make_settings: Callable[..., Settings]) -> None:
    with mock_aws():
        sink = Bucket.from_settings(make_settings(PREDICTIONS_BUCKET="fresh-bucket"))
        sink.ensure()
        sink.ensure()
        sink.put("predictions/x.csv", b"x", "text/csv")
        sink.ensure()
        assert sink.exists("predictions/x.csv")


def test_ensure_bucket_outside_us_east_1(make_settings: Callable[..., Settings]) -> None:
    with mock_aws():
        sink = Bucket.from_settings(make_settings(AWS_DEFAULT_REGION="eu-west-1"))
        sink.ensure()
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
            with pytest.raises(BucketUnavailableError, match=code):
                Bucket(client, BUCKET).ensure()
        else:
            Bucket(client, BUCKET).ensure()
        stub.assert_no_pending_responses()


def test_exists_refuses_to_guess_on_access_denied(make_settings: Callable[..., Settings]) -> None:
    client = make_s3_client(make_settings())
    with Stubber(client) as stub:
        stub.add_client_error("head_object", "403", http_status_code=403)
        with pytest.raises(BucketUnavailableError, match="403"):
            Bucket(client, BUCKET).exists("predictions/a.csv")


def test_put_to_a_missing_bucket_is_an_error(make_settings: Callable[..., Settings]) -> None:
    with mock_aws():
        sink = Bucket.from_settings(make_settings(PREDICTIONS_BUCKET="never-created"))
        with pytest.raises(BucketUnavailableError, match="NoSuchBucket"):
            sink.put("predictions/a.csv", b"x", "text/csv")


# ---------------------------------------------------------------- client, endpoint, outage


def test_client_honours_an_endpoint(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://localhost:{port}"  # a name, which virtual hosting would prefix
        sink = Bucket.from_settings(make_settings(AWS_ENDPOINT_URL_S3=endpoint))
        assert sink.client.meta.endpoint_url == endpoint
        assert sink.client.meta.config.request_checksum_calculation == "when_required"
        sink.ensure()
        sink.put("predictions/a.csv", b"over http", "text/csv")
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
        lambda s: s.put("predictions/a.csv", b"x", "text/csv"),
        lambda s: s.exists("predictions/a.csv"),
        lambda s: s.ensure(),
        lambda s: s.list_objects("predictions/"),
    ],
    ids=["put", "exists", "ensure", "list_objects"],
)
def test_outage_surfaces_within_seconds(
    make_settings: Callable[..., Settings], call: Callable[[Bucket], object]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    sink = Bucket.from_settings(make_settings(AWS_ENDPOINT_URL_S3=dead))
    start = time.monotonic()
    with pytest.raises(BucketUnavailableError, match=re.escape(dead)) as caught:
        call(sink)
    assert time.monotonic() - start < 10
    assert caught.value.__cause__ is not None
