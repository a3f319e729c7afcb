"""Pollers over a partitioned stream (STREAM_PARTITIONS=3) on a real redis-server, in-process
infer, moto S3: every partition read, acknowledged, trimmed and dead-lettered on its own."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.cli.common import CommandError, Exit
from streamfn.cli.serve import chosen_partitions
from streamfn.core.keys import dlq_key
from streamfn.core.settings import Settings
from streamfn.infer import handler
from tests.conftest import bucket_rows, free_port, wait_for
from tests.factories import body, full_record, redis_poller

pytestmark = pytest.mark.slow
PARTITIONS = 3


@pytest.fixture
def parted(infer_settings: Settings) -> Settings:
    return infer_settings.model_copy(update={"STREAM_PARTITIONS": PARTITIONS,
                                             "BATCH_WINDOW_MS": 0})  # fmt: skip


def accept(settings: Settings, count: int) -> list[str]:
    """Send `count` one-record requests of distinct employees through the ingest app."""
    ids = []
    with TestClient(create_app(settings)) as client:
        for n in range(count):
            answer = client.post(
                "/predict_stream?model=lightgbm",
                content=body(full_record(**{"Employee ID": f"EMP{n:04d}"})),
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["message_id"])
    return ids


def test_two_pollers_drain_every_partition_once(parted: Settings, redis_url: str, s3: Any) -> None:
    ids = accept(parted, 60)
    r = redis.Redis.from_url(redis_url)
    assert all(r.xlen(stream) > 0 for stream in parted.streams)
    ctx = handler.build_context(parted)
    pollers = [redis_poller(parted, r, lambda e: handler.handle(e, ctx), consumer=name)
               for name in ("a", "b")]  # fmt: skip
    handled = 0
    while (count := sum(p.run(burst=True) for p in pollers)) > 0:
        handled += count
    assert handled == 60
    assert sorted(row["message_id"] for row in bucket_rows(s3)) == sorted(ids)
    for stream in parted.streams:
        assert r.xpending(stream, parted.CONSUMER_GROUP)["pending"] == 0
        for source in pollers[0].source.partitions:
            source._next_trim = 0
            source.maybe_trim()
        assert r.xlen(stream) <= 1  # each partition trimmed up to its last delivered entry


def test_a_poller_of_some_partitions_leaves_the_others(
    parted: Settings, redis_url: str, s3: Any
) -> None:
    ids = accept(parted, 30)
    r = redis.Redis.from_url(redis_url)
    ctx = handler.build_context(parted)
    chosen = chosen_partitions("0,2", PARTITIONS)
    poller = redis_poller(parted, r, lambda e: handler.handle(e, ctx), "some", partitions=chosen)
    poller.run(burst=True)
    written = {row["message_id"] for row in bucket_rows(s3)}
    middle = {i.decode() for i, _ in r.xrange(parted.streams[1])}
    assert written == set(ids) - middle
    assert middle
    assert r.xinfo_groups(parted.streams[1]) == []  # never read: no group made there


def test_a_poison_entry_goes_to_its_partitions_dead_letters(
    parted: Settings, redis_url: str, s3: Any
) -> None:
    r = redis.Redis.from_url(redis_url)
    tuned = parted.model_copy(update={"MAX_DELIVERIES": 2, "CLAIM_IDLE_MS": 1})
    ctx = handler.build_context(tuned)
    poller = redis_poller(tuned, r, lambda e: handler.handle(e, ctx), "test")
    for source in poller.source.partitions:
        source.ensure_group()
    poison = r.xadd(tuned.streams[2], {"model": "svm", "data": b"\xff"}, id="5-2").decode()

    def dead_lettered() -> bool:
        for source in poller.source.partitions:
            source._next_claim = 0
        poller.poll_once(wait=False)
        return r.xlen(dlq_key(tuned.streams[2])) == 1

    wait_for(dead_lettered, timeout=20)
    assert [r.exists(dlq_key(s)) for s in tuned.streams] == [0, 0, 1]
    state = orjson.loads(r.get(f"streamfn:result:{poison}"))
    assert state["status"] == "dead_letter"


@pytest.mark.parametrize(
    ("given", "chosen"), [(None, None), ("1", [1]), ("0-2", [0, 1, 2]), ("2,0", [0, 2])]
)
def test_partitions_option(given: str | None, chosen: list[int] | None) -> None:
    assert chosen_partitions(given, PARTITIONS) == chosen


@pytest.mark.parametrize("given", ["3", "a", "1-x", "", "2-0"])
def test_partitions_option_refuses_what_is_not_there(given: str) -> None:
    with pytest.raises(CommandError, match="--only-partitions") as refused:
        chosen_partitions(given, PARTITIONS)
    assert refused.value.code == Exit.USAGE


def test_busy_partitions_take_turns_and_a_failing_one_rests_alone(
    parted: Settings, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    tuned = parted.model_copy(update={"BATCH_SIZE": 5})
    for n in range(40):  # partitions 0 and 2 busy, 1 empty
        for p in (0, 2):
            r.xadd(tuned.streams[p], {"model": "svm", "data": b"[]"}, id=f"{n + 1}-{p}")
    served: list[str] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        served.append(event["Records"][0]["eventSourceARN"].rsplit("/", 1)[1])
        return {"batchItemFailures": []}

    poller = redis_poller(tuned, r, invoke, "fair")
    for _ in range(6):
        poller.poll_once(wait=False)
    assert served == [tuned.streams[p] for p in (0, 2, 0, 2, 0, 2)]
    # Partition 2's master stops answering: 0 goes on alone, 2 rests, nothing is raised.
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    poller.source.partitions[2].redis = dead
    served.clear()
    for _ in range(4):
        poller.poll_once(wait=False)
    assert set(served) == {tuned.streams[0]}
    assert poller.source.partitions[2].resting()
    assert r.xpending(tuned.streams[2], tuned.CONSUMER_GROUP)["pending"] == 0  # left unread
