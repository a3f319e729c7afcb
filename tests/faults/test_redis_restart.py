"""Fault 2: redis-server SIGKILLed and restarted on its AOF while records flow."""

from __future__ import annotations

import time

import pytest

from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CONCURRENCY, BATCH = 4, 10
DOWN_S = 3.0


def stream_id(text: str) -> tuple[int, int]:
    """A stream id as a comparable pair."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def test_redis_sigkill_and_restart_from_aof(pipeline: Pipeline) -> None:
    """Acknowledged records survive a SIGKILL of Redis: lost 0, duplicated 0."""
    pipeline.start("a", "b")
    run = pipeline.produce(3000, seed=203, batch=BATCH, concurrency=CONCURRENCY, rate=600)
    pipeline.wait(lambda: pipeline.added() >= 100, 30, "records flowing")
    added, delivered = pipeline.added(), pipeline.group()["last-delivered-id"]
    pipeline.kill_redis()
    time.sleep(DOWN_S)  # the fault: Redis stays down; ingest answers 503, pollers back off
    pipeline.start_redis()
    # The AOF gives back the stream and the group as they were at the kill (or later).
    assert pipeline.added() >= added
    assert stream_id(pipeline.group()["last-delivered-id"]) >= stream_id(delivered)
    summary = pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally("redis_sigkill_restart")
    assert summary["throttled"] > 0, f"the producer never saw a 503: {summary}"
    assert pipeline.poller_total("streamfn_poller_backoffs_total", "a", "b") > 0
    # A request Redis applied but whose 202 died with it is sent again by the producer with the
    # same Idempotency-Key: the AOF kept the key's record with the entry, and the retry is
    # answered as the first was. Nothing is written twice.
    pipeline.check(tally)
