"""The ingest app over HTTP (FastAPI's TestClient) against a real redis-server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core import message_state
from streamfn.core.canaries import ROLLBACKS, ROLLED_BACK, Canary
from streamfn.core.settings import Settings
from tests.conftest import free_port, wait_for
from tests.factories import SEED_EXAMPLE, body, full_record

STREAM = "mlops_stream"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def post(client: TestClient, content: bytes, model: str = "svm", **headers: str) -> Any:
    headers = {"content-type": "application/json", **headers}
    return client.post(f"/predict_stream?model={model}", content=content, headers=headers)


def test_seed_example_is_accepted_once_with_canonical_records(
    client: TestClient, r: redis.Redis
) -> None:
    answer = post(client, orjson.dumps(SEED_EXAMPLE))
    assert answer.status_code == 202, answer.text
    reply = answer.json()
    assert reply["model"] == "svm"
    assert reply["records"] == 1
    assert reply["status_url"] == f"/predictions/{reply['message_id']}"
    entries = r.xrange(STREAM)
    assert len(entries) == 1
    entry_id, fields = entries[0]
    assert entry_id.decode() == reply["message_id"]
    assert fields[b"model"] == b"svm"
    assert orjson.loads(fields[b"data"]) == [
        {"Designation": 1.5, "Resource Allocation": 1.7, "Sleep Hours": 7}
    ]
    assert int(fields[b"received_at"]) == int(reply["message_id"].split("-")[0])


def test_each_request_is_one_entry(client: TestClient, r: redis.Redis) -> None:
    ids = {
        post(client, body(full_record()), model=m).json()["message_id"] for m in ("knn", "lightgbm")
    }
    ids.add(post(client, body(*[full_record()] * 50)).json()["message_id"])
    assert len(ids) == 3
    assert {e[0].decode() for e in r.xrange(STREAM)} == ids
    assert sum(len(orjson.loads(f[b"data"])) for _, f in r.xrange(STREAM)) == 52


BAD_INPUTS: list[tuple[str, bytes, dict[str, str], str, int, list[str]]] = [
    # (case, body, headers, model, status, substrings of the first error message)
    ("malformed json", b'{"data": [', {}, "svm", 422, ["malformed JSON"]),
    ("not json at all", b"hello", {}, "svm", 422, ["malformed JSON"]),
    ("NaN literal", b'{"data": [{"Sleep Hours": NaN}]}', {}, "svm", 422, ["malformed JSON"]),
    ("body is a list", b"[1, 2]", {}, "svm", 422, ["object"]),
    ("no data key", b'{"records": []}', {}, "svm", 422, ["records"]),
    ("data not a list", b'{"data": {"Sleep Hours": 7}}', {}, "svm", 422, ["array"]),
    ("empty data", b'{"data": []}', {}, "svm", 422, ["at least one record"]),
    ("record not an object", b'{"data": [7]}', {}, "svm", 422, ["0"]),
    ("empty record", body({}), {}, "svm", 422, ["no feature"]),
    ("only employee id", body({"Employee ID": "x"}), {}, "svm", 422, ["no feature"]),
    ("unknown key typo", body({"Sleep Hour": 7}), {}, "svm", 422, ["Sleep Hour", "did you mean"]),
    ("unknown key", body({"Salary": 7}), {}, "svm", 422, ["Salary"]),
    ("string for number", body({"Sleep Hours": "7"}), {}, "svm", 422, ["number"]),
    ("bool for number", body({"Designation": True}), {}, "svm", 422, ["number"]),
    ("list for number", body({"Team Size": [3]}), {}, "svm", 422, ["number"]),
    ("object for number", body({"Team Size": {"v": 3}}), {}, "svm", 422, ["number"]),
    ("below range", body({"Designation": -1}), {}, "svm", 422, ["Designation", "0"]),
    ("above range", body({"Sleep Hours": 25}), {}, "svm", 422, ["Sleep Hours", "24"]),
    ("team size too big", body({"Team Size": 1001}), {}, "svm", 422, ["Team Size"]),
    ("huge float", b'{"data": [{"Sleep Hours": 1e400}]}', {}, "svm", 422, ["infinity"]),
    ("huge int", b'{"data": [{"Team Size": 99999999999999999999999}]}', {}, "svm", 422, []),
    ("bad category", body({"Gender": "Other"}), {}, "svm", 422, ["Gender", "Male"]),
    ("number for category", body({"Gender": 1}), {}, "svm", 422, ["Gender"]),
    ("id not a string", body({"Employee ID": 5, "Team Size": 3}), {}, "svm", 422, ["Employee ID"]),
    (
        "case-duplicate keys",
        b'{"data": [{"Sleep Hours": 7, "sleep_hours": 8}]}',
        {},
        "svm",
        422,
        ["Sleep Hours"],
    ),
    (
        "deeply nested value",
        b'{"data": [{"Team Size": ' + b"[" * 5000 + b"]" * 5000 + b"}]}",
        {},
        "svm",
        422,
        [],
    ),
    ("deeply nested body", b"[" * 5000 + b"]" * 5000, {}, "svm", 422, []),
    ("second record bad", body(full_record(), {"Sleep Hours": 99}), {}, "svm", 422, ["1"]),
    ("unknown model", body(full_record()), {}, "xgboost", 422, ["svm", "knn", "lightgbm"]),
    (
        "wrong content type",
        body(full_record()),
        {"content-type": "text/plain"},
        "svm",
        415,
        ["application/json"],
    ),
    (
        "form content type",
        b"a=1",
        {"content-type": "application/x-www-form-urlencoded"},
        "svm",
        415,
        [],
    ),
    ("too many records", body(*[full_record()] * 11), {}, "svm", 413, ["10"]),
    (
        "body too large",
        body(full_record(**{"Employee ID": "x" * 120})) * 200,
        {},
        "svm",
        413,
        ["MAX_BODY_BYTES"],
    ),
]


@pytest.mark.parametrize(
    ("body_bytes", "headers", "model", "status", "needles"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused_precisely_and_leaves_the_stream_unchanged(
    make_settings: Callable[..., Settings],
    r: redis.Redis,
    body_bytes: bytes,
    headers: dict[str, str],
    model: str,
    status: int,
    needles: list[str],
) -> None:
    small = make_settings(MAX_RECORDS=10, MAX_BODY_BYTES=65536)
    with TestClient(create_app(small)) as client:
        answer = post(client, body_bytes, model=model, **headers)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    message = " ".join(str(item["msg"]) + " " + " ".join(map(str, item["loc"])) for item in detail)
    for needle in needles:
        assert needle.lower() in message.lower()
    assert r.xlen(STREAM) == 0


def test_a_missing_model_is_refused_naming_the_valid_ones(client: TestClient) -> None:
    answer = client.post("/predict_stream", content=body(full_record()),
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["query", "model"]
    assert "'svm', 'knn', 'lightgbm'" in detail["msg"]


def test_bad_record_errors_name_index_and_field(client: TestClient) -> None:
    answer = post(client, body(full_record(), full_record(**{"Sleep Hours": 30})))
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "data", 1, "Sleep Hours"]


def test_api_key_is_required_when_set(
    make_settings: Callable[..., Settings], r: redis.Redis
) -> None:
    keyed = make_settings(INGEST_API_KEY="s3cret")
    with TestClient(create_app(keyed)) as client:
        assert post(client, orjson.dumps(SEED_EXAMPLE)).status_code == 401
        assert post(client, orjson.dumps(SEED_EXAMPLE), **{"X-API-Key": "wrong"}).status_code == 401
        assert r.xlen(STREAM) == 0
        assert (
            post(client, orjson.dumps(SEED_EXAMPLE), **{"X-API-Key": "s3cret"}).status_code == 202
        )
    assert r.xlen(STREAM) == 1


def test_lag_over_max_lag_is_refused_with_retry_after(
    make_settings: Callable[..., Settings], r: redis.Redis
) -> None:
    r.xgroup_create(STREAM, "workers", id="0", mkstream=True)
    tight = make_settings(MAX_LAG=3)
    with TestClient(create_app(tight)) as client:
        for _ in range(3):
            assert post(client, body(full_record())).status_code == 202
        refused = post(client, body(full_record()))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "MAX_LAG=3" in refused.json()["detail"]
        assert r.xlen(STREAM) == 3
        # A consumer reads two entries: the lag falls below the limit and appends resume.
        r.xreadgroup("workers", "c1", {STREAM: ">"}, count=2)
        assert post(client, body(full_record())).status_code == 202
    assert r.xlen(STREAM) == 4


def test_lag_counts_the_whole_stream_before_any_group_exists(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings(MAX_LAG=2))) as client:
        assert [post(client, body(full_record())).status_code for _ in range(3)] == [202, 202, 503]


def test_prediction_states(client: TestClient, r: redis.Redis, settings: Settings) -> None:
    message_id = post(client, orjson.dumps(SEED_EXAMPLE)).json()["message_id"]
    pending = client.get(f"/predictions/{message_id}").json()
    assert pending["status"] == "pending"
    assert pending["model"] == "svm"
    done: message_state.MessageState = {
        "status": "done",
        "model": "svm",
        "model_version": "3",
        "predictions": [2],
        "object": "s3://predictions/x.csv",
    }
    message_state.save(r, [(message_id, done)], settings.RESULT_TTL_S, settings.keys.result)
    answer = client.get(f"/predictions/{message_id}").json()
    assert answer == {
        "message_id": message_id,
        "status": "done",
        "model": "svm",
        "model_version": "3",
        "predictions": [2],
        "labels": ["High"],
        "object": "s3://predictions/x.csv",
        "error": None,
    }
    assert 0 < r.ttl(f"streamfn:result:{message_id}") <= settings.RESULT_TTL_S


@pytest.mark.parametrize("message_id", ["1-0", "99999999999999-0", "not-an-id", "1" * 80])
def test_unknown_message_is_404(client: TestClient, message_id: str) -> None:
    assert client.get(f"/predictions/{message_id}").status_code == 404


def test_health_metrics_docs(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    post(client, orjson.dumps(SEED_EXAMPLE))
    post(client, body({"Sleep Hour": 7}))
    text = client.get("/metrics").text
    assert 'streamfn_ingest_records_total{model="svm"}' in text
    assert 'streamfn_ingest_rejections_total{reason="extra_forbidden"}' in text
    assert "streamfn_ingest_request_seconds_bucket" in text
    spec = client.get("/openapi.json").json()
    parameters = {p["name"]: p for p in spec["paths"]["/predict_stream"]["post"]["parameters"]}
    assert parameters["model"]["schema"]["enum"] == ["svm", "knn", "lightgbm"]
    assert parameters["X-API-Key"]["in"] == "header"
    content = spec["paths"]["/predict_stream"]["post"]["requestBody"]["content"]
    example = content["application/json"]["example"]
    assert post(client, orjson.dumps(example)).status_code == 202
    assert client.get("/docs").status_code == 200


def test_models_reports_registry_errors_without_failing(
    make_settings: Callable[..., Settings],
) -> None:
    offline = make_settings(MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    with TestClient(create_app(offline)) as client:
        answer = client.get("/models")
    assert answer.status_code == 200
    models = answer.json()["models"]
    assert [m["model"] for m in models] == ["svm", "knn", "lightgbm"]
    assert [m["registered_name"] for m in models] == [
        "SVC",
        "Knn_Classifier",
        "LightGBM_Classifier",
    ]
    assert all("unreachable" in m["error"] for m in models)


def test_models_says_each_models_canary_as_redis_keeps_it(
    make_settings: Callable[..., Settings], r: redis.Redis
) -> None:
    """No challenger here: a canary that ended is shown, serving nothing; none is null."""
    settings = make_settings(CANARY_SHARE="0.25")
    ended = Canary("4", 0.0, ROLLED_BACK, 0, (0.05, 0.25), 600.0, 1_796_000_000_000,
                   "error rate 4.0% above 1.0%", 1_796_000_060_000)  # fmt: skip
    r.hset(settings.keys.canary("lightgbm"), mapping=ended.to_hash())
    r.hincrby(settings.keys.canary("lightgbm"), ROLLBACKS, 1)
    with TestClient(create_app(settings)) as client:
        models = {m["model"]: m for m in client.get("/models").json()["models"]}
    assert models["lightgbm"]["canary"] == {
        "version": "4", "share": 0.0, "status": "rolled back", "step": 0, "steps": [0.05, 0.25],
        "every_s": 600.0, "since_ms": 1_796_000_000_000, "reason": "error rate 4.0% above 1.0%",
        "updated_ms": 1_796_000_060_000, "rollbacks": 1, "serving": 0.0,
    }  # fmt: skip
    assert models["svm"]["canary"] is None  # CANARY_SHARE, but no challenger to serve it


def test_a_lag_redis_overstates_after_an_aof_reload_does_not_refuse_requests(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # redis/redis#10569: the AOF replays a read as XCLAIM ... LASTID, which moves the group on
    # without its read counter, so after a restart Redis reports a lag for entries long done.
    server = subprocess.Popen(
        ["redis-server", "--port", str(port := free_port()), "--bind", "127.0.0.1",
         "--dir", str(tmp_path), "--appendonly", "yes", "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    try:
        wait_for(r.ping)
        r.xgroup_create(STREAM, "workers", id="$", mkstream=True)

        def add_read_ack(count: int) -> None:
            for _ in range(count):
                r.xadd(STREAM, {"model": "svm", "data": "[]", "received_at": "1"})
            ids = [entry_id for entry_id, _ in r.xreadgroup("workers", "c1", {STREAM: ">"})[0][1]]
            r.xack(STREAM, "workers", *ids)
            r.xtrim(STREAM, minid=ids[-1], approximate=False)  # as the poller trims

        add_read_ack(2)
        r.bgrewriteaof()  # the group's read counter (2) is in the base file from now on
        wait_for(lambda: not r.info("persistence")["aof_rewrite_in_progress"])
        add_read_ack(5)
        assert r.xinfo_groups(STREAM)[0]["lag"] == 0
        r.shutdown()  # a clean stop: the AOF is complete
        server.wait(timeout=10)
        server = subprocess.Popen(server.args, stdout=subprocess.DEVNULL)
        wait_for(r.ping)
        group = r.xinfo_groups(STREAM)[0]
        assert (group["pending"], group["lag"]) == (0, 5)  # Redis's error, which we work around
        with TestClient(create_app(make_settings(REDIS_URL=url, MAX_LAG=3))) as client:
            assert post(client, body(full_record())).status_code == 202
    finally:
        server.kill()
        server.wait(timeout=10)
