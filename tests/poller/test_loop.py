"""The poller against a real redis-server, in-process infer, moto S3: ack, trim, retry, DLQ."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest
import redis

from streamfn.core import crash
from streamfn.core.settings import Settings
from streamfn.infer import handler
from streamfn.poller.invoke import InvokeError
from streamfn.poller.loop import Poller
from streamfn.stream.events import BatchResponse
from tests.conftest import bucket_rows, rows_in, s3_client, wait_for
from tests.factories import SEED, redis_poller

pytestmark = pytest.mark.slow
STREAM = "mlops_stream"


def add(r: redis.Redis, model: str = "svm", data: list[dict[str, Any]] = SEED) -> str:
    fields = {
        "model": model,
        "data": orjson.dumps(data),
        "received_at": str(int(time.time() * 1000)),
    }
    return r.xadd(STREAM, fields).decode()


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def ctx(infer_settings: Settings, s3: Any) -> handler.InferContext:
    return handler.build_context(infer_settings)


def poller_for(
    settings: Settings, r: redis.Redis, ctx: handler.InferContext, **overrides: Any
) -> Poller:
    tuned = settings.model_copy(update=overrides)
    return redis_poller(tuned, r, lambda event: handler.handle(event, ctx), consumer="test")


def test_burst_drains_in_batches_acks_and_trims(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext, s3: Any
) -> None:
    ids = [add(r, model) for model in ("svm", "knn", "lightgbm") * 10]
    poller = poller_for(infer_settings, r, ctx, BATCH_SIZE=8, BATCH_WINDOW_MS=0)
    assert poller.run(burst=True) == 30
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted(ids)
    assert r.xpending(STREAM, "workers")["pending"] == 0
    poller.source.partitions[0]._next_trim = 0
    poller.source.partitions[0].maybe_trim()
    assert r.xlen(STREAM) <= 1  # trimming keeps at most the last delivered entry


def test_poison_entry_is_dead_lettered_and_does_not_block_the_rest(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext, s3: Any
) -> None:
    poller = poller_for(
        infer_settings, r, ctx, MAX_DELIVERIES=3, CLAIM_IDLE_MS=1, BATCH_WINDOW_MS=0
    )
    before = add(r)
    poison = r.xadd(STREAM, {"model": "svm", "data": b"\xff not json"}).decode()
    after = add(r, "knn")
    poller.source.partitions[0].ensure_group()
    assert poller.poll_once(wait=False) == 3
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted([before, after])
    later = add(r)

    def dead_lettered() -> bool:
        # Reclaim on every pass instead of once a second.
        poller.source.partitions[0]._next_claim = 0
        poller.poll_once(wait=False)
        return r.xlen(f"{STREAM}:dlq") == 1

    wait_for(dead_lettered, timeout=20)
    _, fields = r.xrange(f"{STREAM}:dlq")[0]
    assert fields[b"data"] == b"\xff not json"
    assert fields[b"deliveries"] == b"3"
    assert b"not JSON" in fields[b"error"]
    assert int(fields[b"failed_at"]) > 0
    assert fields[b"message_id"].decode() == poison
    assert r.xpending(STREAM, "workers")["pending"] == 0
    state = orjson.loads(r.get(f"streamfn:result:{poison}"))
    assert state["status"] == "dead_letter"
    assert later in {row["message_id"] for row in bucket_rows(s3)}


def test_a_batch_that_fails_whole_stays_pending_and_is_retried(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext, s3: Any
) -> None:
    calls: list[int] = []

    def flaky(event: dict[str, Any]) -> BatchResponse:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise handler.DependencyError("S3 down")
        return handler.handle(event, ctx)

    tuned = infer_settings.model_copy(update={"CLAIM_IDLE_MS": 1, "BATCH_WINDOW_MS": 0})
    poller = redis_poller(tuned, r, flaky, consumer="test")
    ids = [add(r) for _ in range(5)]
    poller.source.partitions[0].ensure_group()
    with pytest.raises(InvokeError, match="S3 down"):
        poller.poll_once(wait=False)
    assert r.xpending(STREAM, "workers")["pending"] == 5
    assert bucket_rows(s3) == []

    def retried() -> bool:
        poller.source.partitions[0]._next_claim = 0
        return poller.poll_once(wait=False) == 5

    wait_for(retried)
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted(ids)
    assert r.xpending(STREAM, "workers")["pending"] == 0


def test_stop_request_ends_run(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext
) -> None:
    poller = poller_for(infer_settings, r, ctx)
    poller.stopping.set()
    assert poller.run() == 0


def test_a_poller_that_stops_leaves_the_group_unless_it_holds_entries(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext, s3: Any
) -> None:
    # Consumer names are per process: without leaving, every restart would add one for good.
    [add(r) for _ in range(3)]
    assert poller_for(infer_settings, r, ctx, BATCH_WINDOW_MS=0).run(burst=True) == 3
    assert r.xinfo_consumers(STREAM, "workers") == []

    def down(event: dict[str, Any]) -> BatchResponse:
        raise handler.DependencyError("S3 down")

    holder = redis_poller(infer_settings, r, down, consumer="holder")
    add(r)
    with pytest.raises(InvokeError):
        holder.poll_once(wait=False)
    holder.source.leave()  # its entry must stay claimable: it does not leave
    [consumer] = r.xinfo_consumers(STREAM, "workers")
    assert (consumer["name"], consumer["pending"]) == (b"holder", 1)


def test_s3_stopped_then_back_loses_and_duplicates_nothing(
    infer_settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    client = s3_client(endpoint)
    client.create_bucket(Bucket="predictions")  # type: ignore[attr-defined]
    tuned = infer_settings.model_copy(update={"AWS_ENDPOINT_URL_S3": endpoint, "CLAIM_IDLE_MS": 1})
    ctx = handler.build_context(tuned)
    poller = redis_poller(tuned, r, lambda event: handler.handle(event, ctx), consumer="test")
    poller.source.partitions[0].ensure_group()
    first = [add(r) for _ in range(3)]
    assert poller.poll_once(wait=False) == 3
    server.stop()
    during = [add(r, "knn") for _ in range(4)]
    with pytest.raises(InvokeError):
        poller.poll_once(wait=False)
    assert r.xpending(STREAM, "workers")["pending"] == 4
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)  # S3 is back, state intact
    server.start()
    try:

        def drained() -> bool:
            poller.source.partitions[0]._next_claim = 0
            poller.poll_once(wait=False)
            return r.xpending(STREAM, "workers")["pending"] == 0

        wait_for(drained)
        seen = rows_in(client)
        assert sorted(message_id for message_id, _ in seen) == sorted(first + during)
        assert set(seen.values()) == {1}
    finally:
        server.stop()


def test_moving_champion_changes_model_version_with_one_load(
    make_settings: Any, r: redis.Redis, s3: Any, tmp_path: Any
) -> None:
    from mlflow import MlflowClient

    from streamfn.data import training

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    training.train(uri, "champion", models=("knn",))
    ctx = handler.build_context(make_settings(MLFLOW_TRACKING_URI=uri, MODEL_REFRESH_S=0))
    poller = redis_poller(
        make_settings(BATCH_WINDOW_MS=0), r, lambda e: handler.handle(e, ctx), consumer="t"
    )
    poller.source.partitions[0].ensure_group()
    before = add(r, "knn")
    assert poller.poll_once(wait=False) == 1
    registry = MlflowClient(uri)
    current = registry.get_model_version_by_alias("Knn_Classifier", "champion")
    moved = registry.create_model_version("Knn_Classifier", current.source, run_id=current.run_id)
    registry.set_registered_model_alias("Knn_Classifier", "champion", moved.version)
    ctx.models.get("knn")  # due (MODEL_REFRESH_S=0): the refresh starts beside the batches
    ctx.models.settle()
    after = add(r, "knn")
    assert poller.poll_once(wait=False) == 1
    versions = {row["message_id"]: row["model_version"] for row in bucket_rows(s3)}
    assert versions == {before: "1", after: str(moved.version)}
    assert ctx.models.loads == 2


def test_a_long_invocation_keeps_its_entries_from_being_reclaimed(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext, s3: Any
) -> None:
    tuned = infer_settings.model_copy(update={"CLAIM_IDLE_MS": 400, "BATCH_WINDOW_MS": 0})
    invoking = threading.Event()
    released = threading.Event()

    def slow(event: dict[str, Any]) -> BatchResponse:
        invoking.set()
        released.wait(timeout=30)  # the fault: an invocation many times CLAIM_IDLE_MS long
        return handler.handle(event, ctx)

    holder = redis_poller(tuned, r, slow, consumer="holder")
    other = redis_poller(tuned, r, lambda e: handler.handle(e, ctx), consumer="other")
    ids = [add(r) for _ in range(3)]
    holder.source.partitions[0].ensure_group()
    working = threading.Thread(target=holder.poll_once, kwargs={"wait": False})
    working.start()
    assert invoking.wait(timeout=10)
    taken = []
    deadline = time.monotonic() + 2.0  # five times CLAIM_IDLE_MS
    while time.monotonic() < deadline:
        other.source.partitions[0]._next_claim = 0
        taken += other.source.partitions[0].claim_idle(256)
        time.sleep(0.02)  # pacing the other poller's attempts, not waiting for an outcome
    released.set()
    working.join(timeout=30)
    assert taken == []  # without holding, the other poller takes all three after 0.4 s
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted(ids)
    assert r.xpending(STREAM, "workers")["pending"] == 0


def test_a_crash_before_the_ack_is_reclaimed_and_written_once(
    infer_settings: Settings, r: redis.Redis, ctx: handler.InferContext, s3: Any
) -> None:
    tuned = infer_settings.model_copy(update={"CLAIM_IDLE_MS": 50, "BATCH_WINDOW_MS": 0})
    infer = lambda event: handler.handle(event, ctx)  # noqa: E731
    dying = redis_poller(tuned, r, infer, "dying", checkpoint=crash.raise_at("before_ack"))
    ids = [add(r, model) for model in ("svm", "knn", "lightgbm")]
    dying.source.partitions[0].ensure_group()
    with pytest.raises(crash.Crash):
        dying.poll_once(wait=False)
    assert r.xpending(STREAM, "workers")["pending"] == 3  # written, never acknowledged
    survivor = redis_poller(tuned, r, infer, "survivor")

    def reclaimed() -> bool:
        survivor.source.partitions[0]._next_claim = 0
        survivor.poll_once(wait=False)
        return r.xpending(STREAM, "workers")["pending"] == 0

    wait_for(reclaimed)
    assert rows_in(s3) == dict.fromkeys(((i, "0") for i in ids), 1)
