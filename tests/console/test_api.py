"""The console's JSON against a real Redis, registry and (in-process moto) S3: the ingest counts
what it accepts, the infer function what it writes, once, and the page reads both."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.console.objects import content_type
from streamfn.core.settings import Settings
from streamfn.infer import handler
from tests.factories import batch_event, body, full_record, sqs_record

STREAM = "mlops_stream"


@pytest.fixture
def served(make_settings: Callable[..., Settings], s3: Any) -> Settings:
    return make_settings(MODELS="svm=SVC,lightgbm=LightGBM_Classifier")


@pytest.fixture
def api(served: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(served)) as client:
        yield client


def accept(api: TestClient, model: str, sizes: list[int]) -> None:
    for size in sizes:
        answer = api.post(f"/predict_stream?model={model}", content=body(*[full_record()] * size),
                          headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 202, answer.text


def process_stream(settings: Settings, r: redis.Redis) -> None:
    """Hand every entry of the stream to the infer function, as the poller would."""
    messages = [
        sqs_record(entry_id.decode(), fields[b"model"].decode(), orjson.loads(fields[b"data"]),
                   int(fields[b"received_at"]))
        for entry_id, fields in r.xrange(STREAM)
    ]  # fmt: skip
    ctx = handler.build_context(settings)
    assert handler.handle(batch_event(*messages), ctx) == {"batchItemFailures": []}


def test_the_status_counts_what_was_accepted_and_written_once(
    api: TestClient, served: Settings, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    accept(api, "svm", [1, 2, 3])
    accept(api, "lightgbm", [4])
    before = api.get("/ui/api/status").json()
    assert (before["ingested"], before["processed"]) == (10, 0)
    assert sum(before["series"]["ingested"]) == 10
    assert before["lag"] == 4  # no group yet: the whole stream
    process_stream(served, r)
    process_stream(served, r)  # a redelivery of every message: written and counted once
    after = api.get("/ui/api/status").json()
    assert (after["ingested"], after["processed"]) == (10, 10)
    assert sum(after["series"]["processed"]) == 10
    assert after["dead_letters"] == 0
    assert [v["version"] for v in after["versions"]["svm"]] == ["1"]
    assert after["versions"]["svm"][0]["since"] > 0
    partitions = {p["model"]: p for p in api.get("/ui/api/objects").json()["partitions"]}
    assert {m: (p["objects"], p["rows"]) for m, p in partitions.items()} == {
        "svm": (1, 6), "lightgbm": (1, 4),
    }  # fmt: skip


def test_the_newest_rows_and_a_download_come_through_the_api(
    api: TestClient, served: Settings, redis_url: str
) -> None:
    accept(api, "svm", [2])
    accept(api, "lightgbm", [3])
    process_stream(served, redis.Redis.from_url(redis_url))
    rows = api.get("/ui/api/rows").json()["rows"]
    assert sorted(r["model"] for r in rows) == ["lightgbm"] * 3 + ["svm"] * 2
    only = api.get("/ui/api/rows?model=svm").json()["rows"]
    assert {r["model"] for r in only} == {"svm"}
    assert len(only) == 2
    assert {"prediction_label", "Mental Fatigue Score"} <= set(only[0])
    newest = {p["model"]: p["newest"] for p in api.get("/ui/api/objects").json()["partitions"]}
    answer = api.get(f"/ui/api/objects/{newest['lightgbm']}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert len(list(csv.DictReader(io.StringIO(answer.text)))) == 3


@pytest.mark.parametrize(
    "key",
    [
        "predictions/model=svm/date=2026-12-02/1-0_ab.txt",  # not a prediction object's name
        "secrets/model=svm/date=2026-12-02/1-0_ab.csv",  # outside the console's prefixes
        "predictions/model=svm/date=2026-12-02/../../x.csv",
        "predictions/model=svm/date=2026-12-02/1-0_0123456789abcdef.csv%0A",  # a newline after
        "predictions/model=svm/date=2026-12-02/1-0_0123456789abcdef.csv",  # no such object
    ],
)
def test_a_download_serves_only_objects_of_the_console(api: TestClient, key: str) -> None:
    answer = api.get(f"/ui/api/objects/{key}")
    assert answer.status_code == 404, answer.text
    assert "detail" in answer.json()


def test_an_unknown_model_is_named_in_a_422(api: TestClient) -> None:
    answer = api.get("/ui/api/rows?model=nope")
    assert answer.status_code == 422
    assert "svm" in answer.text


def test_the_api_key_guards_the_data_but_not_the_empty_page(
    make_settings: Callable[..., Settings], s3: Any
) -> None:
    with TestClient(create_app(make_settings(INGEST_API_KEY="s3cret"))) as client:
        page = client.get("/ui")
        assert page.status_code == 200
        assert "<main" in page.text
        assert client.get("/ui/static/console.js").status_code == 200
        paths = ("/ui/api/status", "/ui/api/objects", "/ui/api/rows", "/ui/api/monitoring",
                 "/ui/api/models")  # fmt: skip
        for path in paths:
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200


def test_s3_down_is_a_503_with_retry_after(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    settings = make_settings(AWS_ENDPOINT_URL_S3="http://127.0.0.1:9")  # nothing listens there
    with TestClient(create_app(settings)) as client:
        key = "predictions/model=svm/date=2026-12-02/1-0_0123456789abcdef.csv"
        answer = client.get(f"/ui/api/objects/{key}")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"


def test_the_allow_list_matches_whole_keys_of_every_backend_and_format() -> None:
    day = "predictions/model=svm/date=2026-12-02"
    for first in ("1-0", "shardId-000000000001_4965", "0f4e0c2a-5d7b-4bb8-9d0e-2f8f3c8a1b6e"):
        assert content_type(f"{day}/{first}_0123456789abcdef.csv") == "text/csv; charset=utf-8"
        parquet = content_type(f"{day}/{first}_0123456789abcdef.parquet")
        assert parquet == "application/vnd.apache.parquet"
    window = "monitoring/model=svm/date=2026-12-02/1764633600_v3.json"
    assert content_type(window) == "application/json"
    assert content_type(f"{day}/1-0_0123456789abcdef.csv\n") is None  # a trailing newline
    assert content_type(window + "\n") is None
    assert content_type("shadow/model=svm/date=2026-12-02/1-0_0123456789abcdef.csv") is None
