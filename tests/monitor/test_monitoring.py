"""Monitoring end to end, in process: the infer function counts real predictions into windows,
the ingest's GET /monitoring and POST /feedback read and feed them (real Redis, registry, S3)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sklearn.metrics import accuracy_score, f1_score

from streamfn.app import create_app
from streamfn.core import metrics
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.data import producer
from streamfn.data.plan import Plan
from streamfn.data.samplers import CopulaSampler, Drifted, parse_drift
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.infer import handler
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import burn_class
from streamfn.monitor.closer import WindowCloser
from streamfn.monitor.windowing import window_of
from streamfn.sink.bucket import Bucket
from streamfn.sink.layout import window_key
from tests.conftest import bucket_rows
from tests.factories import batch_event, redis_poller, sqs_record

pytestmark = pytest.mark.slow
WINDOW_S = 60
PER_WINDOW = 1000  # records: a realistic window, where PSI's noise is about 10/1000


@pytest.fixture
def monitored(make_settings: Callable[..., Settings], s3: Any) -> Settings:
    return make_settings(MONITOR_WINDOW_S=WINDOW_S, MODELS="lightgbm=LightGBM_Classifier")


@pytest.fixture
def api(monitored: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(monitored)) as client:
        yield client


def past_window(back: int) -> int:
    """The start (epoch ms) of the window `back` windows before the current one."""
    return (int(time.time()) // WINDOW_S - back) * WINDOW_S * 1000


def send_window(ctx: handler.InferContext, start_ms: int, records: list[dict[str, Any]]) -> None:
    """The records as messages of 100 accepted within the window starting at start_ms."""
    messages = [
        sqs_record(f"{start_ms + i}-0", "lightgbm", records[i * 100 : (i + 1) * 100], start_ms + i)
        for i in range(len(records) // 100)
    ]
    assert handler.handle(batch_event(*messages), ctx) == {"batchItemFailures": []}


def windows_of(api: TestClient, count: int) -> list[dict[str, Any]]:
    answer = api.get(f"/monitoring?model=lightgbm&windows={count}")
    assert answer.status_code == 200, answer.text
    return answer.json()["windows"]


def test_twenty_windows_of_unchanged_records_raise_no_alarm(
    monitored: Settings, api: TestClient
) -> None:
    ctx = handler.build_context(monitored)
    sampler = RecordSampler(load_profile(), seed=21)
    for back in range(22, 2, -1):
        send_window(ctx, past_window(back), sampler.records(PER_WINDOW))
    found = windows_of(api, 20)
    assert [w["records"] for w in found] == [PER_WINDOW] * 20
    worst = max((f["psi"], n) for w in found for n, f in w["features"].items())
    assert worst[0] < 0.1, worst
    assert {w["flag"] for w in found} == {"ok"}
    assert max(w["prediction"]["psi"] for w in found) < 0.1


def test_a_drifted_feature_is_flagged_in_the_first_full_window(
    monitored: Settings, api: TestClient
) -> None:
    ctx = handler.build_context(monitored)
    sampler = CopulaSampler(RecordSampler(load_profile(), seed=22))
    drift = Drifted(sampler, parse_drift("Mental Fatigue Score=+2.5", seed_schema("lightgbm")))
    send_window(ctx, past_window(4), sampler.records(PER_WINDOW))
    send_window(ctx, past_window(3), drift.records(PER_WINDOW))
    drifted, before = windows_of(api, 2)
    assert drifted["features"]["Mental Fatigue Score"]["flag"] == "drift"
    assert drifted["flag"] == "drift"
    untouched = {n: f["psi"] for n, f in drifted["features"].items() if n != "Mental Fatigue Score"}
    assert max(untouched.values()) < 0.1, untouched
    assert drifted["prediction"]["psi"] > max(0.1, 5 * before["prediction"]["psi"])


def test_the_counts_are_the_buckets_rows_exactly(
    monitored: Settings, s3: Any, redis_url: str
) -> None:
    ctx = handler.build_context(monitored)
    sampler = RecordSampler(load_profile(), seed=23)
    starts = [past_window(back) for back in (6, 5)]
    for start in starts:
        send_window(ctx, start, sampler.records(300))
        send_window(ctx, start + 30_000, sampler.records(200))
    # A redelivery of the first window's messages: written and counted once.
    send_window(ctx, starts[0], sampler.records(300))
    r = redis.Redis.from_url(redis_url)
    rows = bucket_rows(s3)
    for start in starts:
        raw = r.hgetall(Keys().window("lightgbm", "1", start // 1000))
        window = {k.decode(): int(v) for k, v in raw.items()}
        accepted = {row["message_id"]: int(row["message_id"].split("-")[0]) for row in rows}
        mine = [row for row in rows
                if window_of(accepted[row["message_id"]], WINDOW_S) == start // 1000]  # fmt: skip
        assert window["records"] == len(mine) == 500
        classes = Counter(row["prediction"] for row in mine)
        assert {k: v for k, v in window.items() if k.startswith("p:")} == {
            f"p:{c}": n for c, n in classes.items()
        }


def test_labels_join_once_and_unknown_ones_are_refused(
    monitored: Settings, api: TestClient, s3: Any
) -> None:
    ctx = handler.build_context(monitored)
    start = past_window(8)
    send_window(ctx, start, RecordSampler(load_profile(), seed=24).records(300))
    rows = bucket_rows(s3)
    labels = [{"message_id": r["message_id"], "record_index": int(r["record_index"]),
               "label": ["Low", "Medium", "High"][i % 3]} for i, r in enumerate(rows)]  # fmt: skip
    first = api.post("/feedback", json={"labels": labels})
    assert first.status_code == 202, first.text
    assert first.json()["counted"] == 300
    again = api.post("/feedback", json={"labels": labels[:50]})
    assert (again.json()["counted"], again.json()["repeated"], again.json()["conflicts"]) == (
        0, 50, 0)  # fmt: skip
    # Another label for a labelled record is not taken, nor taken for a resend: a conflict.
    conflicts = metrics.FEEDBACK_LABELS.labels("conflict")._value.get()
    other = [{**label, "label": ["Medium", "High", "Low"][i % 3]}
             for i, label in enumerate(labels[:40])]  # fmt: skip
    changed = api.post("/feedback", json={"labels": [*other, *labels[40:50]]})
    assert changed.status_code == 202, changed.text
    found = changed.json()
    assert (found["counted"], found["repeated"], found["conflicts"]) == (0, 10, 40)
    assert metrics.FEEDBACK_LABELS.labels("conflict")._value.get() == conflicts + 40
    stored = redis.Redis.from_url(monitored.REDIS_URL).hget(
        monitored.keys.labels(labels[0]["message_id"]), str(labels[0]["record_index"])
    )
    assert stored == b"0"  # the record's first label, Low (class 0), not the Medium sent after
    unknown = api.post("/feedback", json={"labels": [
        labels[0], {"message_id": "1-0", "record_index": 0, "label": "Low"},
        {**labels[1], "record_index": 100}, {**labels[2], "label": "Scorching"},
    ]})  # fmt: skip
    assert unknown.status_code == 422
    named = [(e["loc"][2], e["loc"][3], e["type"]) for e in unknown.json()["detail"]]
    assert named == [(1, "message_id", "not_found"), (2, "record_index", "out_of_range"),
                     (3, "label", "enum")]  # fmt: skip
    [window] = windows_of(api, 1)
    truth = [lb["label"] for lb in labels]
    predicted = [["Low", "Medium", "High"][int(r["prediction"])] for r in rows]
    assert window["labelled"] == 300  # none of the refused request counted
    assert window["accuracy"] == round(accuracy_score(truth, predicted), 4)
    assert window["macro_f1"] == round(f1_score(truth, predicted, average="macro"), 4)


def test_the_producers_labels_score_as_the_bucket_rows_say(
    make_settings: Callable[..., Settings], s3: Any
) -> None:
    # One window of a day, so that the live figures cover all the records sent.
    settings = make_settings(MONITOR_WINDOW_S=86_400, MODELS="lightgbm=LightGBM_Classifier",
                             BATCH_WINDOW_MS=0)  # fmt: skip
    ctx = handler.build_context(settings)
    poller = redis_poller(settings, redis.Redis.from_url(settings.REDIS_URL),
                          lambda event: handler.handle(event, ctx), "labels")  # fmt: skip
    worker = threading.Thread(target=poller.run, daemon=True)
    worker.start()
    plan = Plan(count=600, batch=50, seed=8, labels=True)
    app = create_app(settings)

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            return await producer.Producer(settings, plan, client).run()

    try:
        tally = asyncio.run(go())
    finally:
        poller.stopping.set()
        worker.join(timeout=30)
    records, rates = CopulaSampler(RecordSampler(load_profile(), 8)).labelled(600)
    truth_of = {r["Employee ID"]: burn_class(rate) for r, rate in zip(records, rates, strict=True)
                if rate is not None}  # fmt: skip
    assert (tally.accepted, tally.labelled, tally.unlabelled) == (600, len(truth_of), 0), (
        tally.errors
    )
    rows = [r for r in bucket_rows(s3) if r["Employee ID"] in truth_of]
    truth = [truth_of[r["Employee ID"]] for r in rows]
    predicted = [int(r["prediction"]) for r in rows]
    with TestClient(app) as api:
        found = api.get("/monitoring?model=lightgbm&windows=2").json()["windows"]
    labelled = sum(w["labelled"] for w in found)
    assert labelled == len(rows)
    if len(found) == 1:  # unless the run straddled midnight UTC
        assert found[0]["accuracy"] == round(accuracy_score(truth, predicted), 4)
        assert found[0]["macro_f1"] == round(f1_score(truth, predicted, average="macro"), 4)


def test_labels_are_kept_once_with_monitoring_off(
    make_settings: Callable[..., Settings], s3: Any, redis_url: str
) -> None:
    off = make_settings(MONITOR_WINDOW_S=0, MODELS="lightgbm=LightGBM_Classifier")
    ctx = handler.build_context(off)
    send_window(ctx, past_window(2), RecordSampler(load_profile(), seed=25).records(100))
    labels = [{"message_id": r["message_id"], "record_index": int(r["record_index"]),
               "label": "Low"} for r in bucket_rows(s3)]  # fmt: skip
    with TestClient(create_app(off)) as api:
        first = api.post("/feedback", json={"labels": labels})
        assert first.status_code == 202, first.text
        assert first.json()["counted"] == 100
        assert api.post("/feedback", json={"labels": labels}).json()["repeated"] == 100
        assert api.get("/monitoring?model=lightgbm").json()["windows"] == []
    # No window hash was made up for the labels to land in.
    assert not redis.Redis.from_url(redis_url).keys("streamfn:monitor:lightgbm:*")


def test_two_versions_in_one_window_are_two_objects(
    monitored: Settings, s3: Any, redis_url: str
) -> None:
    # The champion moved mid-window: counts for versions 1 and 2 of the same window.
    start = past_window(4) // 1000
    r = redis.Redis.from_url(redis_url)
    for version in ("1", "2"):
        r.hset(monitored.keys.window("lightgbm", version, start), mapping={"records": 5, "p:0": 5})
    closer = WindowCloser(r, monitored.keys, Bucket.from_settings(monitored),
                          lambda model, version: None,
                          WINDOW_S, monitored.MONITOR_MIN_RECORDS, monitored.DRIFT_PSI)  # fmt: skip
    for version in ("1", "2"):
        closer.close("lightgbm", version, start)
    listed = s3.list_objects_v2(Bucket=monitored.PREDICTIONS_BUCKET, Prefix="monitoring/")
    keys = [o["Key"] for o in listed["Contents"]]
    assert sorted(keys) == [window_key("lightgbm", v, start) for v in ("1", "2")]
    assert keys[0] != keys[1]
