"""The Idempotency-Key of POST /predict_stream on a Redis Stream: a retry of a request is answered
as it was and appends nothing, another request with the key is refused, and the key's record is
kept IDEMPOTENCY_TTL_S in the slot of the stream it went to."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core import metrics
from streamfn.core.settings import Settings
from streamfn.stream.partitions import Router
from tests.factories import full_record

STREAM = "mlops_stream"
KEY = "order-7f3a: retry me"
RECORDS = [{"Sleep Hours": 7, "Team Size": 3}, full_record(**{"Employee ID": "e-1"})]


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def post(client: TestClient, records: list[dict[str, Any]], key: str | None = KEY,
         model: str = "svm") -> Any:  # fmt: skip
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/predict_stream?model={model}", content=orjson.dumps({"data": records}),
                       headers=headers)  # fmt: skip


def test_a_retry_gets_the_first_answer_and_appends_nothing(api: TestClient, r: redis.Redis) -> None:
    replayed = metrics.INGEST_REPLAYED._value.get()
    first = post(api, RECORDS)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    # The same request again, its keys spelt another way (the same canonical records).
    respelt = [{"sleep_hours": 7, "TEAM SIZE": 3}, RECORDS[1]]
    for records in (RECORDS, respelt, RECORDS):
        again = post(api, records)
        assert again.status_code == 202, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert r.xlen(STREAM) == 1
    assert r.hget("streamfn:console:totals", "ingested") == b"2"  # the records, counted once
    assert metrics.INGEST_REPLAYED._value.get() == replayed + 3
    # Without a key, or with another, each request is its own.
    assert post(api, RECORDS, key=None).json()["message_id"] != first.json()["message_id"]
    assert post(api, RECORDS, key="another").json()["message_id"] != first.json()["message_id"]
    assert r.xlen(STREAM) == 3


@pytest.mark.parametrize(
    ("records", "model"),
    [([{"Sleep Hours": 8, "Team Size": 3}, RECORDS[1]], "svm"), (RECORDS, "knn")],
    ids=["other-records", "other-model"],
)
def test_the_key_with_another_request_is_422(
    api: TestClient, r: redis.Redis, records: list[dict[str, Any]], model: str
) -> None:
    assert post(api, RECORDS).status_code == 202
    refused = post(api, records, model=model)
    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert (error["loc"], error["type"]) == (["header", "Idempotency-Key"],
                                             "idempotency_key_reused")  # fmt: skip
    assert r.xlen(STREAM) == 1


@pytest.mark.parametrize("key", ["", "x" * 129, "tab\tinside", "naïve"],
                         ids=["empty", "too-long", "control", "not-ascii"])  # fmt: skip
def test_a_key_that_is_not_1_to_128_printable_characters_is_422(
    api: TestClient, r: redis.Redis, key: str
) -> None:
    headers = {"content-type": "application/json", "Idempotency-Key": key.encode("latin-1")}
    refused = api.post("/predict_stream?model=svm", headers=headers,  # type: ignore[arg-type]
                       content=orjson.dumps({"data": RECORDS}))  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["type"] == "idempotency_key_invalid"
    assert r.xlen(STREAM) == 0
    assert post(api, RECORDS, key="x" * 128).status_code == 202


def test_a_retry_is_answered_even_when_the_stream_is_full(
    make_settings: Callable[..., Settings], r: redis.Redis
) -> None:
    r.xgroup_create(STREAM, "workers", id="0", mkstream=True)
    with TestClient(create_app(make_settings(MAX_LAG="2"))) as api:
        first = post(api, RECORDS)
        assert post(api, RECORDS, key="second").status_code == 202
        assert post(api, RECORDS, key="third").status_code == 503  # back-pressure
        again = post(api, RECORDS)  # the first request's retry: accepted already
    assert again.status_code == 202
    assert again.json()["message_id"] == first.json()["message_id"]


def test_the_record_lives_idempotency_ttl_s_and_tells_nothing_of_the_key(
    make_settings: Callable[..., Settings], r: redis.Redis
) -> None:
    with TestClient(create_app(make_settings(IDEMPOTENCY_TTL_S="600"))) as api:
        assert post(api, RECORDS).status_code == 202
    [key] = r.keys("streamfn:idem:*")
    assert KEY.encode() not in key  # kept as a hash of it
    assert 590 < r.ttl(key) <= 600


def test_with_partitions_a_request_without_employee_goes_where_its_key_does(
    make_settings: Callable[..., Settings], r: redis.Redis
) -> None:
    settings = make_settings(STREAM_PARTITIONS="4")
    anonymous = [{"Sleep Hours": 7}]
    with TestClient(create_app(settings)) as api:
        ids = {post(api, anonymous).json()["message_id"] for _ in range(5)}
    assert len(ids) == 1
    [appended] = [s for s in settings.streams if r.xlen(s)]
    key_hash = hashlib.sha256(KEY.encode()).hexdigest()
    assert appended == settings.streams[zlib.crc32(key_hash.encode()) % 4]
    # Without a key, such requests still go round the partitions.
    router = Router(4)
    assert {router.partition(anonymous) for _ in range(4)} == {0, 1, 2, 3}
