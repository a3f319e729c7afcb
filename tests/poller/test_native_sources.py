"""Kinesis and SQS as the stream: ingest puts each request there, a local event source mapping
reads it as Lambda's would and invokes the same infer handler (moto's server, real Redis, the
trained registry). Every accepted record ends as exactly one row."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core import crash
from streamfn.core.settings import Settings
from streamfn.infer.handler import DependencyError
from streamfn.poller import invoke
from streamfn.poller.invoke import InvokeError
from streamfn.poller.loop import Poller
from streamfn.sink.formats.base import format_named
from streamfn.stream import base as stream
from streamfn.stream.base import SourceOptions
from streamfn.stream.events import BatchResponse
from streamfn.stream.kinesis.leases import LeaseLostError
from tests.conftest import rows_in, wait_for
from tests.factories import SEED_EXAMPLE, full_record
from tests.poller.native import (
    MAX_RECEIVES,
    SHARDS,
    STREAM,
    Native,
    kinesis_mapping,
    native_on,
    sqs_mapping,
)

pytestmark = pytest.mark.slow

MODELS = ("svm", "knn", "lightgbm")


@pytest.fixture
def native(s3_server: str) -> Native:
    return native_on(s3_server)


@pytest.fixture
def backend_settings(
    make_settings: Callable[..., Settings], native: Native
) -> Callable[..., Settings]:
    return lambda backend, **more: make_settings(STREAM_BACKEND=backend, **native.env(), **more)


def send(settings: Settings, bodies: list[tuple[str, bytes]]) -> list[str]:
    """POST each (model, body) to ingest; the message ids it answered."""
    ids = []
    with TestClient(create_app(settings)) as client:
        for model, body in bodies:
            answer = client.post(f"/predict_stream?model={model}", content=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["message_id"])
    return ids


def status(settings: Settings, message_id: str) -> dict[str, Any]:
    with TestClient(create_app(settings)) as client:
        answer = client.get(f"/predictions/{message_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()


def seed_requests(per_model: int) -> list[tuple[str, bytes]]:
    """The seed's curl body for each model, and records of several employees."""
    bodies = [(m, orjson.dumps(SEED_EXAMPLE)) for m in MODELS]
    for i in range(per_model):
        record = full_record(**{"Employee ID": f"e-{i % 7}"})
        bodies += [(m, orjson.dumps({"data": [record, record]})) for m in MODELS]
    return bodies


def expected_rows(ids: list[str], bodies: list[tuple[str, bytes]]) -> Counter[tuple[str, str]]:
    return Counter((i, str(k)) for i, (_, b) in zip(ids, bodies, strict=True)
                   for k in range(len(orjson.loads(b)["data"])))  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "sink_format"),
    [("redis", "csv"), ("kinesis", "csv"), ("sqs", "csv"), ("kinesis", "parquet")],
)
def test_seed_curl_for_every_model_ends_as_exactly_once_rows_the_console_serves(
    backend: str, sink_format: str, backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings(backend, BATCH_SIZE=8, SINK_FORMAT=sink_format)
    bodies = seed_requests(per_model=6)
    ids = send(settings, bodies)
    assert all(status(settings, i)["status"] == "pending" for i in ids[:3])
    # The poller `streamfn poll` runs for this backend, over the in-process handler.
    options = SourceOptions(settings, "local", crash.no_crash)
    poller = Poller(stream.backend(backend).source(options), invoke.in_process(settings))
    assert poller.run(burst=True) == len(bodies)
    assert rows_in(native.s3) == expected_rows(ids, bodies)
    # The console's counts: records accepted (ingest) and written (infer), whatever the ids.
    totals = redis.Redis.from_url(settings.REDIS_URL).hgetall(settings.keys.totals())
    records = sum(expected_rows(ids, bodies).values())
    assert (int(totals[b"ingested"]), int(totals[b"written"])) == (records, records)
    for message_id, (model, _) in zip(ids[:3], bodies[:3], strict=True):
        done = status(settings, message_id)
        assert (done["status"], done["model"], done["model_version"]) == ("done", model, "1")
        assert done["labels"][0] in {"Low", "Medium", "High"}
    # The console lists each model's newest object, shows its rows and serves it for download.
    fmt = format_named(sink_format)
    with TestClient(create_app(settings)) as console:
        partitions = console.get("/ui/api/objects").json()["partitions"]
        assert {p["model"] for p in partitions} == set(MODELS)
        for newest in (p["newest"] for p in partitions):
            answer = console.get(f"/ui/api/objects/{newest}")
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == fmt.content_type
            written = native.s3.get_object(Bucket="predictions", Key=newest)["Body"].read()
            assert answer.content == written
            header, cells = fmt.table(answer.content)
            assert {row[header.index("message_id")] for row in cells} <= set(ids)
        shown = console.get("/ui/api/rows").json()["rows"]
        assert {r["model"] for r in shown} == set(MODELS)
        assert {r["message_id"] for r in shown} <= set(ids)
    if backend == "kinesis":
        # Both shards carry records, and an employee's requests all went to one shard.
        shard_of = {i.partition(":")[0] for i in ids}
        assert len(shard_of) == SHARDS
        employees: dict[str, set[str]] = {}
        for message_id, (_, body) in zip(ids, bodies, strict=True):
            employee = orjson.loads(body)["data"][0].get("Employee ID", "")
            employees.setdefault(employee, set()).add(message_id.partition(":")[0])
        assert all(len(shards) == 1 for e, shards in employees.items() if e)
    elif backend == "sqs":
        depth = native.sqs.get_queue_attributes(
            QueueUrl=native.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_kinesis_redelivery_from_the_start_duplicates_nothing(
    backend_settings: Callable[..., Settings], native: Native, redis_url: str
) -> None:
    settings = backend_settings("kinesis", BATCH_SIZE=5)
    bodies = seed_requests(per_model=3)
    ids = send(settings, bodies)
    mapping = kinesis_mapping(settings, native)
    mapping.run(burst=True)
    assert rows_in(native.s3) == expected_rows(ids, bodies)
    # The checkpoints outlive the records they point to (Kinesis keeps them 365 days at most).
    client = redis.Redis.from_url(redis_url)
    assert 365 * 86_400 < client.ttl(mapping.source.leases.checkpoints_key) <= 366 * 86_400
    # A poller that lost its checkpoints reads the whole stream again: every row stays once.
    assert client.delete(mapping.source.leases.checkpoints_key) == 1
    assert kinesis_mapping(settings, native).run(burst=True) == len(bodies)
    assert rows_in(native.s3) == expected_rows(ids, bodies)


def put_poison(native: Native, partition_key: str) -> str:
    reply = native.kinesis.put_record(StreamName=STREAM, Data=b"not json",
                                      PartitionKey=partition_key)  # fmt: skip
    return str(reply["SequenceNumber"])


def test_kinesis_poison_record_reaches_the_on_failure_queue_and_those_behind_it_are_written(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis", BATCH_SIZE=4, MAX_DELIVERIES=3)
    record = full_record(**{"Employee ID": "e-1"})
    before = send(settings, [("svm", orjson.dumps({"data": [record]}))])
    poison = put_poison(native, "e-1")  # same employee: same shard, behind `before`
    after = send(settings, [("knn", orjson.dumps({"data": [record]}))] * 3)
    kinesis_mapping(settings, native).run(burst=True)
    assert rows_in(native.s3) == Counter({(i, "0"): 1 for i in before + after})
    [failure] = native.drain(native.on_failure_url)
    info = failure["KinesisBatchInfo"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["startSequenceNumber"] == poison
    assert info["shardId"] == before[0].partition(":")[0]
    assert info["streamArn"].endswith(f"stream/{STREAM}")
    shard = info["shardId"]
    assert status(settings, f"{shard}:{poison}")["status"] == "failed"


def test_kinesis_bisects_a_batch_the_function_crashes_on(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis", BATCH_SIZE=8, MAX_DELIVERIES=2)
    ids = send(settings, [("svm", orjson.dumps({"data": [full_record(**{
        "Employee ID": "e-1"})]}))] * 8)  # fmt: skip
    crasher = ids[5].partition(":")[2]
    real = invoke.in_process(settings)
    batches: list[int] = []

    def crashing(event: dict[str, Any]) -> BatchResponse:
        batches.append(len(event["Records"]))
        if any(r["kinesis"]["sequenceNumber"] == crasher for r in event["Records"]):
            raise ValueError("cannot take this record")  # a crash, not an outage
        return real(event)

    kinesis_mapping(settings, native, crashing).run(burst=True)
    assert rows_in(native.s3) == Counter({(i, "0"): 1 for i in ids if i != ids[5]})
    # 8 crashes; its first half goes through; the second narrows to the record (4, 2, 1), which
    # is tried MAX_DELIVERIES times; then the record after it goes with its neighbour.
    assert batches == [8, 4, 4, 2, 1, 1, 1, 2]
    [failure] = native.drain(native.on_failure_url)
    info = failure["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (crasher, crasher)


def test_kinesis_outage_retries_the_same_batch_without_giving_it_up(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis", BATCH_SIZE=8, MAX_DELIVERIES=2)
    ids = send(settings, [("svm", orjson.dumps({"data": [full_record()]}))] * 4)
    real = invoke.in_process(settings)
    down = {"tries": 0}

    def flaky(event: dict[str, Any]) -> BatchResponse:
        if down["tries"] < 5:  # more tries than MAX_DELIVERIES: an outage does not count
            down["tries"] += 1
            raise DependencyError("S3: down")
        return real(event)

    mapping = kinesis_mapping(settings, native, flaky)
    for _ in range(5):
        with pytest.raises(InvokeError):
            mapping.poll_once(wait=False)
    assert rows_in(native.s3) == Counter()
    mapping.run(burst=True)
    assert rows_in(native.s3) == Counter({(i, "0"): 1 for i in ids})
    assert native.drain(native.on_failure_url) == []


def test_sqs_poison_message_reaches_the_dead_letter_queue_and_the_others_are_written(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("sqs", BATCH_SIZE=10, BATCH_WINDOW_MS=0)
    good = send(settings, [("svm", orjson.dumps({"data": [full_record()]}))] * 3)
    poison = native.sqs.send_message(QueueUrl=native.queue_url, MessageBody="not json")
    mapping = sqs_mapping(settings, native)

    def dead_lettered() -> list[dict[str, Any]]:
        mapping.poll_once(wait=True)  # the failed message comes back each second
        reply = native.sqs.receive_message(QueueUrl=native.dead_url)
        return reply.get("Messages", [])

    [dead] = wait_for(dead_lettered, timeout=MAX_RECEIVES * 3 + 5)  # type: ignore[misc]
    assert dead["MessageId"] == poison["MessageId"]
    assert rows_in(native.s3) == Counter({(i, "0"): 1 for i in good})
    assert "not JSON" in status(settings, poison["MessageId"])["error"]


@pytest.mark.parametrize("backend", ["kinesis", "sqs"])
def test_a_poller_killed_mid_batch_loses_nothing_and_redelivery_duplicates_nothing(
    backend: str, backend_settings: Callable[..., Settings], native: Native
) -> None:
    # CLAIM_IDLE_MS: the dead poller's shard lease passes on quickly (Kinesis); the queue's
    # visibility timeout (1 s) brings the SQS messages back.
    settings = backend_settings(backend, BATCH_SIZE=10, CLAIM_IDLE_MS=500)
    bodies = seed_requests(per_model=4)
    ids = send(settings, bodies)
    make = kinesis_mapping if backend == "kinesis" else sqs_mapping
    dying = make(settings, native)
    dying.source.checkpoint = crash.raise_at("before_ack")  # rows written, not acknowledged
    with pytest.raises(crash.Crash):
        dying.run(burst=True)
    written = sum(rows_in(native.s3).values())
    assert 0 < written < sum(expected_rows(ids, bodies).values())
    fresh = make(settings, native, None, "restarted") if backend == "kinesis" else make(
        settings, native)  # fmt: skip

    def finished() -> bool:
        fresh.poll_once(wait=True)
        return rows_in(native.s3) == expected_rows(ids, bodies)

    wait_for(finished, timeout=30)
    fresh.run(burst=True)
    assert rows_in(native.s3) == expected_rows(ids, bodies)


def test_kinesis_pollers_share_the_shards_and_a_dead_ones_pass_on(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis", CLAIM_IDLE_MS=300)
    nothing: Callable[[dict[str, Any]], BatchResponse] = lambda _event: {"batchItemFailures": []}  # noqa: E731
    a, b = (kinesis_mapping(settings, native, nothing, name) for name in ("a", "b"))
    held_a, held_b = a.source.leases.held, b.source.leases.held
    a.poll_once(wait=False)
    assert len(held_a) == SHARDS  # alone: every shard
    b.poll_once(wait=False)
    a.poll_once(wait=False)  # two pollers now: a gives up an idle shard
    b.poll_once(wait=False)
    assert (len(held_a), len(held_b)) == (1, 1)
    assert held_a.isdisjoint(held_b)

    def b_holds_all() -> bool:  # a stops polling, as a dead poller does
        b.poll_once(wait=False)
        return len(held_b) == SHARDS

    wait_for(b_holds_all, timeout=10)


def test_kinesis_lease_outlives_a_slow_invocation(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis", CLAIM_IDLE_MS=300)
    [message_id] = send(settings, [("svm", orjson.dumps({"data": [full_record()]}))])
    shard_id = message_id.partition(":")[0]
    started, release = threading.Event(), threading.Event()

    def slow(_event: dict[str, Any]) -> BatchResponse:  # a cold start: longer than the lease
        started.set()
        release.wait(10)
        return {"batchItemFailures": []}

    a = kinesis_mapping(settings, native, slow, "a")
    b = kinesis_mapping(settings, native, slow, "b")
    worker = threading.Thread(target=a.poll_once, args=(False,))
    worker.start()
    assert started.wait(10)
    until = time.monotonic() + 1.0  # over three lease lengths
    while time.monotonic() < until:
        b.poll_once(wait=False)
        assert shard_id not in b.source.leases.held
    release.set()
    worker.join(10)
    assert a.source.shards[shard_id].batches == deque()  # done, and checkpointed by its holder
    assert a.source.leases.checkpoint(shard_id) == message_id.partition(":")[2]


def test_kinesis_checkpoint_only_moves_forward_and_only_for_the_holder(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis")
    nothing: Callable[[dict[str, Any]], BatchResponse] = lambda _event: {"batchItemFailures": []}  # noqa: E731
    poller = kinesis_mapping(settings, native, nothing, "a")
    poller.poll_once(wait=False)
    shard_id = next(iter(poller.source.shards))
    leases = poller.source.leases
    leases.move(shard_id, "100")
    leases.move(shard_id, "99")  # an older sequence number: a late answer
    leases.move(shard_id, "1000")
    assert leases.checkpoint(shard_id) == "1000"
    leases.redis.set(leases.lease_key(shard_id), "someone else")
    with pytest.raises(LeaseLostError):
        leases.move(shard_id, "2000")
    assert leases.checkpoint(shard_id) == "1000"


class _ExpiringOnce:
    """The real Kinesis client, except that the first iterator it hands out has expired by
    the time it is used, as after five idle minutes (moto's iterators never expire)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.refused = 0
        self.reissued = False  # a new iterator was asked for since the refusal

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        self.reissued = self.refused > 0
        return self.client.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        if self.refused == 0 or not self.reissued:  # the expired one, however often it is tried
            self.refused += 1
            error = {"Error": {"Code": "ExpiredIteratorException", "Message": "too old"}}
            raise ClientError(error, "GetRecords")
        return self.client.get_records(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_kinesis_expired_iterator_is_replaced_from_the_checkpoint(
    backend_settings: Callable[..., Settings], native: Native
) -> None:
    settings = backend_settings("kinesis", BATCH_SIZE=50)
    bodies = seed_requests(per_model=2)
    ids = send(settings, bodies)
    mapping = kinesis_mapping(settings, native)
    client = mapping.source.client = _ExpiringOnce(native.kinesis)

    def written() -> bool:  # each burst ends when a poll finds nothing to do
        mapping.run(burst=True)
        return rows_in(native.s3) == expected_rows(ids, bodies)

    wait_for(written, timeout=10)
    assert client.refused == 1  # the stale iterator was used once, then replaced
