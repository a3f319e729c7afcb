"""Ingest with STREAM_BACKEND=kinesis or sqs: throttling is a 503 with Retry-After, an entry over
the service's size limit a 413, and an accepted entry stays accepted if Redis fails after it.

Throttling cannot be provoked on moto's server: botocore's Stubber answers as the service would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.settings import Settings
from streamfn.stream.sqs.writer import SQS_MAX_BYTES
from tests.factories import SEED_EXAMPLE, full_record
from tests.poller.native import STREAM, Native, native_on

pytestmark = pytest.mark.slow


@pytest.fixture
def native(s3_server: str) -> Native:
    return native_on(s3_server)


def post(client: TestClient, body: bytes, model: str = "svm") -> Any:
    return client.post(f"/predict_stream?model={model}", content=body,
                       headers={"content-type": "application/json"})  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "operation", "code"),
    [
        ("kinesis", "put_records", "ProvisionedThroughputExceededException"),
        ("sqs", "send_message_batch", "RequestThrottled"),
    ],
)
def test_throttling_is_a_503_with_retry_after_and_nothing_marked(
    backend: str, operation: str, code: str, make_settings: Callable[..., Settings],
    native: Native, redis_url: str,
) -> None:  # fmt: skip
    settings = make_settings(STREAM_BACKEND=backend, **native.env())
    app = create_app(settings)
    with TestClient(app) as client:
        assert post(client, orjson.dumps(SEED_EXAMPLE)).status_code == 202  # binds the writer
        writer = app.state.redis.writer
        with Stubber(writer.client) as stub:
            stub.add_client_error(operation, service_error_code=code, http_status_code=400)
            answer = post(client, orjson.dumps(SEED_EXAMPLE))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert code in answer.json()["detail"]
    assert "throttling" in answer.json()["detail"]
    totals = redis.Redis.from_url(redis_url).hget("streamfn:console:totals", "ingested")
    assert totals == b"1"  # only the first request was counted


def test_a_kinesis_record_refused_inside_put_records_is_a_503(
    make_settings: Callable[..., Settings], native: Native
) -> None:
    settings = make_settings(STREAM_BACKEND="kinesis", **native.env())
    app = create_app(settings)
    with TestClient(app) as client:
        assert post(client, orjson.dumps(SEED_EXAMPLE)).status_code == 202
        with Stubber(app.state.redis.writer.client) as stub:
            failed = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "x"}
            stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [failed]})
            answer = post(client, orjson.dumps(SEED_EXAMPLE))
    assert answer.status_code == 503
    assert "throttling" in answer.json()["detail"]


def test_an_entry_over_the_queue_limit_is_a_413_naming_it(
    make_settings: Callable[..., Settings], native: Native
) -> None:
    settings = make_settings(STREAM_BACKEND="sqs", **native.env())
    record = full_record(**{"Employee ID": "e" * 100})
    records = [record] * (SQS_MAX_BYTES // len(orjson.dumps(record)) + 1)
    with TestClient(create_app(settings)) as client:
        answer = post(client, orjson.dumps({"data": records}))
    assert answer.status_code == 413
    assert f"SQS takes {SQS_MAX_BYTES}" in answer.json()["detail"][0]["msg"]
    assert native.sqs.receive_message(QueueUrl=native.queue_url).get("Messages") is None


def test_an_unreachable_stream_is_a_503_naming_it(
    make_settings: Callable[..., Settings], native: Native
) -> None:
    settings = make_settings(STREAM_BACKEND="kinesis", **{**native.env(),
                             "KINESIS_STREAM": "no-such-stream"})  # fmt: skip
    with TestClient(create_app(settings)) as client:
        answer = post(client, orjson.dumps(SEED_EXAMPLE))
    assert answer.status_code == 503
    assert "no-such-stream" in answer.json()["detail"]


class _RedisGone:
    """A Redis client whose every round trip fails, as Redis going away just after the put."""

    def pipeline(self, transaction: bool = False) -> _RedisGone:
        return self

    async def __aenter__(self) -> _RedisGone:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., _RedisGone]:
        return lambda *_args, **_kwargs: self

    async def execute(self) -> None:
        raise redis.exceptions.ConnectionError("Redis went away")


def test_accepted_entry_stands_when_redis_fails_after_the_put(
    make_settings: Callable[..., Settings], native: Native
) -> None:
    settings = make_settings(STREAM_BACKEND="kinesis", **native.env())
    app = create_app(settings)
    with TestClient(app) as client:
        assert post(client, orjson.dumps(SEED_EXAMPLE)).status_code == 202  # binds the writer
        app.state.redis.writer.redis = _RedisGone()
        answer = post(client, orjson.dumps(SEED_EXAMPLE))
    assert answer.status_code == 202, answer.text
    shard, _, sequence = answer.json()["message_id"].partition(":")
    iterator = native.kinesis.get_shard_iterator(
        StreamName=STREAM, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=sequence,
    )["ShardIterator"]  # fmt: skip
    [record] = native.kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"]
    assert orjson.loads(record["Data"])["model"] == "svm"


# ---- the Idempotency-Key, kept in Redis around the put ------------------------------------------


def keyed(client: TestClient, body: bytes, key: str) -> Any:
    headers = {"content-type": "application/json", "Idempotency-Key": key}
    return client.post("/predict_stream?model=svm", content=body, headers=headers)


def entries(native: Native, backend: str) -> int:
    """How many entries the stream or queue holds."""
    if backend == "sqs":
        found = native.sqs.get_queue_attributes(
            QueueUrl=native.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(found["Attributes"]["ApproximateNumberOfMessages"])
    shards = native.kinesis.list_shards(StreamName=STREAM)["Shards"]
    count = 0
    for shard in shards:
        iterator = native.kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        count += len(native.kinesis.get_records(ShardIterator=iterator)["Records"])
    return count


@pytest.mark.parametrize("backend", ["kinesis", "sqs"])
def test_a_retry_with_the_key_is_put_once(
    backend: str, make_settings: Callable[..., Settings], native: Native, redis_url: str
) -> None:
    settings = make_settings(STREAM_BACKEND=backend, **native.env())
    body, other = orjson.dumps(SEED_EXAMPLE), orjson.dumps({"data": [full_record()]})
    with TestClient(create_app(settings)) as client:
        first = keyed(client, body, "k-1")
        assert first.status_code == 202, first.text
        again = keyed(client, body, "k-1")
        assert again.status_code == 202
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["message_id"] == first.json()["message_id"]
        assert keyed(client, other, "k-1").status_code == 422
        # A first request still being put: its retry is told to come back.
        [record] = redis.Redis.from_url(redis_url).keys("streamfn:idem:*")
        held = redis.Redis.from_url(redis_url).get(record).decode().split()
        redis.Redis.from_url(redis_url).set(record, f"p {held[1]} someone-else")
        busy = keyed(client, body, "k-1")
        assert (busy.status_code, busy.headers["retry-after"]) == (409, "1")
    assert entries(native, backend) == 1


def test_a_refused_put_lets_the_key_go(
    make_settings: Callable[..., Settings], native: Native
) -> None:
    settings = make_settings(STREAM_BACKEND="kinesis", **native.env())
    app = create_app(settings)
    body = orjson.dumps(SEED_EXAMPLE)
    with TestClient(app) as client:
        assert post(client, body).status_code == 202  # binds the writer
        with Stubber(app.state.redis.writer.client) as stub:
            stub.add_client_error("put_records", service_error_code="ThrottlingException",
                                  http_status_code=400)  # fmt: skip
            assert keyed(client, body, "k-2").status_code == 503
        retried = keyed(client, body, "k-2")  # appended now, not "in progress"
    assert retried.status_code == 202, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert entries(native, "kinesis") == 2
