"""Redis stays bounded: dead letters are kept DLQ_RETENTION_S, the records not yet processed are
bounded in bytes (MAX_LAG_BYTES) as in entries, every other key streamfn writes expires, and a full
Redis is a 503 that says so in words of ours."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.settings import Settings
from streamfn.infer import handler
from streamfn.stream.redis.partition import Entry, Partition
from tests.conftest import RedisServer
from tests.factories import full_record, redis_poller

STREAM = "mlops_stream"
DAY_MS = 86_400_000
JSON = {"content-type": "application/json"}


def post(client: TestClient, records: list[dict[str, Any]], model: str = "svm") -> Any:
    return client.post(f"/predict_stream?model={model}", headers=JSON,
                       content=orjson.dumps({"data": records}))  # fmt: skip


def test_dead_letters_are_kept_dlq_retention_s(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    settings = make_settings(DLQ_RETENTION_S=str(7 * 86_400))
    client = redis.Redis.from_url(redis_url)
    partition = Partition(settings, client, "test", STREAM)
    partition.ensure_group()
    now = int(time.time() * 1000)
    for age_days in (30, 10, 8, 6, 1):  # dead-lettered that long ago (an id is its time)
        client.xadd(partition.dlq, {"data": "[]"}, id=f"{now - age_days * DAY_MS}-0")
    partition.maybe_trim()
    ages = [round((now - int(i.decode().split("-")[0])) / DAY_MS) for i, _ in
            client.xrange(partition.dlq)]  # fmt: skip
    assert ages == [6, 1]
    # A new dead letter trims in the same call, and comes with its message's id.
    client.delete(partition.dlq)
    client.xadd(partition.dlq, {"data": "[]"}, id=f"{now - 9 * DAY_MS}-0")
    client.xadd(STREAM, {"model": "svm", "data": "[]"}, id="1-0")
    [(_, fields)] = client.xreadgroup(settings.CONSUMER_GROUP, "test", {STREAM: ">"})[0][1]
    partition.dead_letter([Entry("1-0", fields, 5)])
    [(_, kept)] = client.xrange(partition.dlq)
    assert kept[b"message_id"] == b"1-0"


@pytest.fixture
def budget(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(MAX_LAG_BYTES="3000")


def test_unprocessed_bytes_are_bounded_by_max_lag_bytes(budget: Settings, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = budget.keys.lag_bytes(STREAM)
    records = [full_record(**{"Employee ID": f"e-{i}"}) for i in range(3)]
    with TestClient(create_app(budget)) as api:
        while (answer := post(api, records)).status_code == 202:
            held = sum(len(fields[b"data"]) for _, fields in client.xrange(STREAM))
            assert int(client.get(key)) == held  # exactly the data not yet acknowledged
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert "MAX_LAG_BYTES=3000" in answer.json()["detail"]
        stored = client.xlen(STREAM)
        assert 1 < stored < 10
        # The poller acknowledges what it wrote: the bytes leave the count, the stream takes more.
        poller = redis_poller(budget, client, lambda event: {"batchItemFailures": []})
        poller.run(burst=True)
        assert client.get(key) is None
        assert post(api, records).status_code == 202


def test_an_entry_acknowledged_twice_is_counted_off_once(budget: Settings, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    partition = Partition(budget, client, "test", STREAM)
    partition.ensure_group()
    with TestClient(create_app(budget)) as api:
        for _ in range(2):
            assert post(api, [full_record()]).status_code == 202
    entries = [Entry(i.decode(), f, 1) for i, f in
               client.xreadgroup(budget.CONSUMER_GROUP, "test", {STREAM: ">"})[0][1]]  # fmt: skip
    key = budget.keys.lag_bytes(STREAM)
    second = len(entries[1].fields[b"data"])
    partition.ack(entries[:1])
    partition.ack(entries[:1])
    assert int(client.get(key)) == second
    # A count that drifted (acknowledged behind streamfn's back) starts again once nothing waits.
    client.incrby(key, 10_000)
    partition.maybe_trim()
    assert int(client.get(key)) == second + 10_000  # an entry still pending: left alone
    client.xack(STREAM, budget.CONSUMER_GROUP, entries[1].id)
    partition._next_trim = 0.0
    partition.maybe_trim()
    assert client.get(key) is None


@pytest.fixture
def full_redis(private_redis: RedisServer) -> Iterator[redis.Redis]:
    """A Redis at its maxmemory, which evicts nothing: every write is refused."""
    client = redis.Redis.from_url(private_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    yield client
    client.config_set("maxmemory", "0")


def test_a_full_redis_is_storage_full_never_redis_words(
    make_settings: Callable[..., Settings], private_redis: RedisServer, full_redis: redis.Redis
) -> None:
    with TestClient(create_app(make_settings(REDIS_URL=private_redis.url))) as api:
        answer = post(api, [full_record()])
    assert answer.status_code == 503, answer.text
    assert answer.json() == {"detail": "storage full, retry later"}
    assert answer.headers["retry-after"] == "1"


def test_any_other_redis_error_is_a_503_without_its_text(
    settings: Settings, redis_url: str
) -> None:
    redis.Redis.from_url(redis_url).set(STREAM, "not a stream")  # WRONGTYPE at the XADD
    with TestClient(create_app(settings)) as api:
        answer = post(api, [full_record()])
    assert answer.status_code == 503
    assert answer.json() == {"detail": "Redis error; retry in 1s"}


# What may live without a TTL, and why each is bounded anyway.
BOUNDED = {
    f"{STREAM}": "trimmed to what is not acknowledged; MAX_LAG and MAX_LAG_BYTES bound the rest",
    f"{STREAM}:dlq": "DLQ_RETENTION_S",
    "streamfn:console:totals": "a few counters",
    f"streamfn:lag_bytes:{STREAM}": "one number per stream",
}


def test_every_key_streamfn_writes_expires_or_is_bounded(
    make_settings: Callable[..., Settings], redis_url: str, s3: Any
) -> None:
    settings = make_settings(MONITOR_WINDOW_S="60", MAX_DELIVERIES="1")
    client = redis.Redis.from_url(redis_url)
    with TestClient(create_app(settings)) as api:
        accepted = [post(api, [full_record()], model).json()["message_id"]
                    for model in ("svm", "knn", "lightgbm")]  # fmt: skip
        client.xadd(STREAM, {"model": "nobody", "data": "[]", "received_at": "1"})  # poison
        ctx = handler.build_context(settings)
        poller = redis_poller(settings, client, lambda event: handler.handle(event, ctx))
        poller.run(burst=True)
        labels = [{"message_id": i, "record_index": 0, "label": "High"} for i in accepted]
        assert api.post("/feedback", json={"labels": labels}).status_code == 202
        assert api.get("/ui/api/status").status_code == 200
    assert client.xlen(f"{STREAM}:dlq") == 1
    unbounded = sorted(k.decode() for k in client.scan_iter(count=1000)
                       if client.ttl(k) < 0 and k.decode() not in BOUNDED)  # fmt: skip
    assert unbounded == []
    # Those kept by a retention of their own: the window index, the dates the console lists.
    assert client.keys("streamfn:monitor:index:*")
    assert client.keys("streamfn:console:objects:*")
