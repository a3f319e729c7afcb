"""The producer against the real ingest app and a real Redis: counts, pacing, back-pressure."""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import redis

from streamfn.app import create_app
from streamfn.core.settings import Settings
from streamfn.data import producer
from streamfn.data.plan import EVENT_DEFAULT_COUNT, Pacer, Plan, Tally, retry_after_s
from streamfn.local.stack import free_port
from tests.conftest import wait_for

STREAM = "mlops_stream"


def run(settings: Settings, plan: Plan, app_settings: Settings | None = None) -> Tally:
    """Run a plan against the ingest app (in process, over ASGI) and return its tally."""

    async def go() -> Tally:
        transport = httpx.ASGITransport(app=create_app(app_settings or settings))
        async with httpx.AsyncClient(transport=transport) as client:
            return await producer.Producer(settings, plan, client).run()

    return asyncio.run(go())


def stream_records(r: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    """(model, record) of every record in the stream, in order."""
    return [
        (fields[b"model"].decode(), record)
        for _, fields in r.xrange(STREAM)
        for record in orjson.loads(fields[b"data"])
    ]


def test_count_mode_sends_every_record_once_models_in_turn(
    settings: Settings, redis_url: str
) -> None:
    plan = Plan(count=250, batch=40, seed=1, models=("svm", "lightgbm"))
    tally = run(settings, plan)
    assert (tally.sent, tally.accepted, tally.rejected, tally.undelivered) == (250, 250, 0, 0)
    assert tally.requests == 7  # six of 40, one of 10
    r = redis.Redis.from_url(redis_url)
    models = [fields[b"model"].decode() for _, fields in r.xrange(STREAM)]
    assert Counter(models) == {"svm": 4, "lightgbm": 3}  # in turn (requests overlap, so any order)
    assert len(stream_records(r)) == 250


def test_same_seed_sends_the_same_records(settings: Settings, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    plan = Plan(count=30, batch=7, seed=5, concurrency=1)  # one at a time: same order
    run(settings, plan)
    first = stream_records(r)
    r.delete(STREAM)
    run(settings, plan)
    assert stream_records(r) == first


def test_back_pressure_is_waited_out_and_nothing_is_lost(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.xgroup_create(STREAM, "workers", id="0", mkstream=True)
    settings = make_settings(MAX_LAG=3)
    stop = threading.Event()

    def consume() -> None:  # a slow consumer: the lag stays at MAX_LAG most of the time
        reader = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            if reader.xreadgroup("workers", "c", {STREAM: ">"}, count=2, block=100):
                time.sleep(0.3)  # a slow worker, not a synchronisation

    worker = threading.Thread(target=consume)
    worker.start()
    try:
        tally = run(settings, Plan(count=60, batch=5, concurrency=2, seed=2))
    finally:
        stop.set()
        worker.join()
    assert tally.throttled > 0
    assert (tally.accepted, tally.rejected, tally.undelivered) == (60, 0, 0)
    assert len(stream_records(r)) == 60


def test_refused_records_are_counted_and_explained(
    make_settings: Callable[..., Settings],
) -> None:
    server = make_settings(INGEST_API_KEY="secret")
    tally = run(make_settings(), Plan(count=20, batch=10), app_settings=server)
    assert (tally.accepted, tally.rejected, tally.undelivered) == (0, 20, 0)
    assert tally.errors
    assert tally.errors[0].startswith("401")
    ok = run(make_settings(INGEST_API_KEY="secret"), Plan(count=20, batch=10), server)
    assert ok.accepted == 20


def test_an_unreachable_ingest_leaves_records_undelivered_not_lost(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(INGEST_URL=f"http://127.0.0.1:{free_port()}")

    async def go() -> Tally:
        async with producer.open_producer(settings, plan) as sender:
            return await sender.run()

    plan = Plan(count=12, batch=4, give_up_s=1.0)
    tally = asyncio.run(go())
    assert (tally.sent, tally.accepted, tally.undelivered) == (12, 0, 12)
    assert tally.retries >= 3  # each batch retried before giving up
    assert "ConnectError" in tally.errors[0]


def test_rate_mode_paces_and_stops_on_request(settings: Settings, redis_url: str) -> None:
    async def go() -> Tally:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport) as client:
            sender = producer.Producer(settings, Plan(rate=200, batch=10), client)
            asyncio.get_running_loop().call_later(1.0, sender.stop)
            return await sender.run()

    tally = asyncio.run(go())
    # 200 records/s for 1 s: the first batch leaves at once, then one every 50 ms.
    assert 150 <= tally.accepted <= 230
    assert tally.in_flight == 0
    assert len(stream_records(redis.Redis.from_url(redis_url))) == tally.accepted


def test_pacer_books_slots_and_does_not_burst_after_a_stall() -> None:
    now = [100.0]
    pacer = Pacer(rate=10, clock=lambda: now[0])
    assert pacer.delay(5) == 0.0
    assert pacer.delay(5) == pytest.approx(0.5)
    now[0] += 10.0  # stalled for 10 s: resume at the rate, not with 100 records at once
    assert pacer.delay(5) == 0.0
    assert pacer.delay(5) == pytest.approx(0.5)
    assert pacer.behind_s == pytest.approx(9.0)
    assert Pacer(rate=None).delay(1000) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("600", producer.MAX_RETRY_AFTER_S), ("-3", 0.0), ("soon", None)],
)
def test_retry_after_seconds(header: str, seconds: float | None) -> None:
    answer = httpx.Response(503, headers={"Retry-After": header})
    assert retry_after_s(answer) == seconds


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    seconds = retry_after_s(httpx.Response(429, headers={"Retry-After": when}))
    assert seconds is not None
    assert 3 <= seconds <= 5


@pytest.mark.parametrize("plan", [{"count": 0}, {"count": 10, "batch": 0}, {}])
def test_bad_plans_are_refused(plan: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"positive|count, a rate"):
        Plan(**plan)


def test_a_model_outside_models_is_refused_naming_the_valid_ones(settings: Settings) -> None:
    with pytest.raises(ValueError, match="among svm, knn, lightgbm; got gpt"):
        Plan(count=10, models=("gpt",)).models_of(settings)
    assert Plan(count=10).models_of(settings) == ("svm", "knn", "lightgbm")


def test_lambda_handler_sends_the_event_plan_and_a_schedule_sends_the_default(
    redis_url: str, sqlite_registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    # The ingest reads each model's schema from the registry: this test's, not the shell's.
    env = {**os.environ, "REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": sqlite_registry}
    command = [sys.executable, "-m", "streamfn.cli", "ingest", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, timeout=30)
        monkeypatch.setenv("INGEST_URL", base)
        monkeypatch.setenv("REDIS_URL", redis_url)
        from streamfn.core.environment import get_settings

        get_settings.cache_clear()
        from functions.produce import app

        app = importlib.reload(app)  # the handler reads its settings at import, as on Lambda
        context = SimpleNamespace(get_remaining_time_in_millis=lambda: 60_000)
        answer = app.handler({"count": 30, "batch": 10, "models": "knn", "seed": 1}, context)
        assert (answer["accepted"], answer["rejected"], answer["requests"]) == (30, 0, 3)
        scheduled = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
                     "detail": {}}  # fmt: skip
        assert app.handler(scheduled, context)["accepted"] == EVENT_DEFAULT_COUNT
    finally:
        get_settings.cache_clear()
        server.terminate()
        server.wait(timeout=10)
    r = redis.Redis.from_url(redis_url)
    assert len(stream_records(r)) == 30 + EVENT_DEFAULT_COUNT


def test_cli_reports_undelivered_records_as_an_outage(redis_url: str) -> None:
    env = {**os.environ, "INGEST_URL": f"http://127.0.0.1:{free_port()}"}
    done = subprocess.run(
        [sys.executable, "-m", "streamfn.cli", "produce", "--count", "5", "--give-up-s", "0.5"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 5  # the ingest did not answer
    assert "undelivered" in done.stdout + done.stderr
    summary = [line for line in done.stderr.splitlines() if "producer finished" in line]
    assert orjson.loads(summary[0])["undelivered"] == 5


def test_cli_without_count_or_rate_says_what_to_give() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamfn.cli", "produce"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--count" in done.stderr
    assert "--rate" in done.stderr


class LosesTheFirstAnswer(httpx.AsyncBaseTransport):
    """The ingest app, whose first answer is lost after it appended (a timeout at the client)."""

    def __init__(self, app: Any) -> None:
        self.app = httpx.ASGITransport(app=app)
        self.keys: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("idempotency-key"))
        answer = await self.app.handle_async_request(request)
        if len(self.keys) == 1:
            await answer.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return answer


def test_a_request_whose_answer_was_lost_is_sent_again_and_appended_once(
    settings: Settings, redis_url: str
) -> None:
    transport = LosesTheFirstAnswer(create_app(settings))
    plan = Plan(count=30, batch=10, seed=3, concurrency=1)

    async def go() -> Tally:
        async with httpx.AsyncClient(transport=transport) as client:
            return await producer.Producer(settings, plan, client).run()

    tally = asyncio.run(go())
    assert (tally.accepted, tally.retries, tally.undelivered) == (30, 1, 0)
    # One key per request, the same on its retry: the ingest appended the first request once.
    first, retry, *others = transport.keys
    assert first is not None
    assert retry == first
    assert len({first, *others}) == 3
    assert len(stream_records(redis.Redis.from_url(redis_url))) == 30
