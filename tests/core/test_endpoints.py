"""Where AWS is: LocalStack or moto named once by boto3's own AWS_ENDPOINT_URL, a service moved
elsewhere by its own AWS_ENDPOINT_URL_<SERVICE>, each honoured by the clients streamfn makes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamfn.core.aws import aws_session
from streamfn.core.settings import Settings
from streamfn.sink.bucket import Bucket, make_s3_client
from streamfn.stream.aws import writer_client
from tests.conftest import S3_TEST_ENV


def test_aws_endpoint_url_points_every_client_and_a_service_variable_wins(
    s3_server: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    everything, elsewhere = s3_server, "http://127.0.0.1:4599"  # moto's server; a second place
    for name, value in {**S3_TEST_ENV, "AWS_ENDPOINT_URL": everything,
                        "AWS_ENDPOINT_URL_SQS": elsewhere}.items():  # fmt: skip
        monkeypatch.setenv(name, value)  # boto3 reads them from the process's environment
    settings = make_settings(AWS_ENDPOINT_URL=everything, AWS_ENDPOINT_URL_SQS=elsewhere,
                             **S3_TEST_ENV)  # fmt: skip
    # S3 on AWS_ENDPOINT_URL, buckets by path (no virtual host to resolve there): it works.
    assert make_s3_client(settings).meta.endpoint_url == everything
    bucket = Bucket.from_settings(settings)
    bucket.ensure()
    bucket.put("predictions/x.csv", b"x", "text/csv")
    assert [o["key"] for o in bucket.list_objects("predictions/")] == ["predictions/x.csv"]
    # Ingest's writers, the pollers' sources and the Lambda invoker pass a service's own
    # variable when set, and leave the rest to boto3.
    session = aws_session(settings)
    resolved = {
        "kinesis": writer_client(settings, "kinesis", settings.AWS_ENDPOINT_URL_KINESIS),
        "sqs": writer_client(settings, "sqs", settings.AWS_ENDPOINT_URL_SQS),
        "lambda": session.client("lambda", endpoint_url=settings.AWS_ENDPOINT_URL_LAMBDA),
    }
    assert {s: c.meta.endpoint_url for s, c in resolved.items()} == {
        "kinesis": everything, "sqs": elsewhere, "lambda": everything,
    }  # fmt: skip
    resolved["kinesis"].create_stream(StreamName="s", ShardCount=1)
    assert resolved["kinesis"].list_streams()["StreamNames"] == ["s"]
