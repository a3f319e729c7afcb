"""The poller against a real redis-server, in-process infer, moto S3: ack, trim, retry, DLQ."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import redis

from streamfn import batch
from streamfn.config import Settings
from streamfn.poller import InvokeError, Poller
from tests.conftest import wait_for
from tests.test_infer import SEED, bucket_rows

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
def ctx(infer_settings: Settings, s3: Any) -> batch.InferContext:
    return batch.build_context(infer_settings)


def poller_for(
    settings: Settings, r: redis.Redis, ctx: batch.InferContext, **overrides: Any
) -> Poller:
    tuned = settings.model_copy(update=overrides)
    return Poller(tuned, r, lambda event: batch.handle(event, ctx), consumer="test")


def test_burst_drains_in_batches_acks_and_trims(
    infer_settings: Settings, r: redis.Redis, ctx: batch.InferContext, s3: Any
) -> None:
    ids = [add(r, model) for model in ("svm", "knn", "lightgbm") * 10]
    poller = poller_for(infer_settings, r, ctx, BATCH_SIZE=8, BATCH_WINDOW_MS=0)
    assert poller.run(burst=True) == 30
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted(ids)
    assert r.xpending(STREAM, "workers")["pending"] == 0
    poller._next_trim = 0
    poller.maybe_trim()
    assert r.xlen(STREAM) <= 1  # trimming keeps at most the last delivered entry


def test_poison_entry_is_dead_lettered_and_does_not_block_the_rest(
    infer_settings: Settings, r: redis.Redis, ctx: batch.InferContext, s3: Any
) -> None:
    poller = poller_for(
        infer_settings, r, ctx, MAX_DELIVERIES=3, CLAIM_IDLE_MS=1, BATCH_WINDOW_MS=0
    )
    before = add(r)
    poison = r.xadd(STREAM, {"model": "svm", "data": b"\xff not json"}).decode()
    after = add(r, "knn")
    poller.ensure_group()
    assert poller.poll_once(block_ms=None) == 3
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted([before, after])
    later = add(r)

    def dead_lettered() -> bool:
        poller._next_claim = 0  # reclaim on every pass instead of once a second
        poller.poll_once(block_ms=None)
        return r.xlen(f"{STREAM}:dlq") == 1

    wait_for(dead_lettered, timeout=20)
    _, fields = r.xrange(f"{STREAM}:dlq")[0]
    assert fields[b"data"] == b"\xff not json"
    assert fields[b"deliveries"] == b"3"
    assert b"not JSON" in fields[b"error"]
    assert int(fields[b"failed_at"]) > 0
    assert r.xpending(STREAM, "workers")["pending"] == 0
    state = orjson.loads(r.get(f"streamfn:result:{poison}"))
    assert state["status"] == "dead_letter"
    assert later in {row["message_id"] for row in bucket_rows(s3)}


def test_a_batch_that_fails_whole_stays_pending_and_is_retried(
    infer_settings: Settings, r: redis.Redis, ctx: batch.InferContext, s3: Any
) -> None:
    calls: list[int] = []

    def flaky(event: dict[str, Any]) -> batch.BatchResponse:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise batch.DependencyError("S3 down")
        return batch.handle(event, ctx)

    tuned = infer_settings.model_copy(update={"CLAIM_IDLE_MS": 1, "BATCH_WINDOW_MS": 0})
    poller = Poller(tuned, r, flaky, consumer="test")
    ids = [add(r) for _ in range(5)]
    poller.ensure_group()
    with pytest.raises(InvokeError, match="S3 down"):
        poller.poll_once(block_ms=None)
    assert r.xpending(STREAM, "workers")["pending"] == 5
    assert bucket_rows(s3) == []

    def retried() -> bool:
        poller._next_claim = 0
        return poller.poll_once(block_ms=None) == 5

    wait_for(retried)
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted(ids)
    assert r.xpending(STREAM, "workers")["pending"] == 0


def test_stop_request_ends_run(
    infer_settings: Settings, r: redis.Redis, ctx: batch.InferContext
) -> None:
    poller = poller_for(infer_settings, r, ctx)
    poller.stopping.set()
    assert poller.run() == 0
