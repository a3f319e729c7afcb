"""The exactly-once protocol, step by step: a crash at each step, then redelivery.

Each case stops the infer function dead at one step (a `Crash`, which no handler catches), then
delivers the message again in a batch of another composition, as a reclaim after a crash does:
a second write would land in an object of another name, so a duplicate cannot hide behind an
overwrite. Every step of the protocol is needed: removing the intent record, the existence check
or the done record makes one of these cases write a row twice or lose it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
import redis

from streamfn.core import crash
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.infer import handler
from tests.conftest import bucket_rows
from tests.factories import SEED, batch_event, full_record, sqs_record

pytestmark = pytest.mark.slow
STEPS = ("after_intent", "after_put", "after_done")


def armed(settings: Settings, step: crash.Step) -> handler.InferContext:
    """An infer context that crashes once at `step`, then runs on (a restarted process)."""
    ctx = handler.build_context(settings)
    ctx.checkpoint = ctx.writer.checkpoint = crash.raise_at(step)
    return ctx


def rows_per_record(s3: Any) -> Counter[tuple[str, str]]:
    return Counter((r["message_id"], r["record_index"]) for r in bucket_rows(s3))


def status(redis_url: str, message_id: str) -> str:
    raw = redis.Redis.from_url(redis_url).get(Keys().result(message_id))
    return orjson.loads(raw)["status"] if raw else "none"


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_each_step_then_redelivery_writes_every_row_once(
    infer_settings: Settings, s3: Any, redis_url: str, step: crash.Step
) -> None:
    ctx = armed(infer_settings, step)
    a = sqs_record("7000-0", "svm", [full_record(), *SEED])
    b = sqs_record("7001-0", "svm", SEED)
    c = sqs_record("7002-0", "svm", SEED)
    with pytest.raises(crash.Crash):
        handler.handle(batch_event(a, b), ctx)
    # What the crash left: the object is in the bucket from the PUT on.
    assert bool(bucket_rows(s3)) == (step != "after_intent")
    # Redelivered: `a` beside a message it was not with, `b` alone.
    assert handler.handle(batch_event(c, a), ctx)["batchItemFailures"] == []
    assert handler.handle(batch_event(b), ctx)["batchItemFailures"] == []
    assert rows_per_record(s3) == {
        ("7000-0", "0"): 1, ("7000-0", "1"): 1, ("7001-0", "0"): 1, ("7002-0", "0"): 1
    }  # fmt: skip
    assert {status(redis_url, i) for i in ("7000-0", "7001-0", "7002-0")} == {"done"}


def test_a_crash_after_the_put_leaves_the_intent_naming_the_object(
    infer_settings: Settings, s3: Any, redis_url: str
) -> None:
    ctx = armed(infer_settings, "after_put")
    with pytest.raises(crash.Crash):
        handler.handle(batch_event(sqs_record("7100-0", "knn", SEED)), ctx)
    state = orjson.loads(redis.Redis.from_url(redis_url).get(Keys().result("7100-0")))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="predictions")["Contents"]]
    assert state["status"] == "pending"
    assert state["object"] == f"s3://predictions/{keys[0]}"
