"""Fault 8: the ingest flooded past MAX_LAG while the pollers are frozen."""

from __future__ import annotations

import signal

import pytest

from tests.faults.parts import metric_samples
from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]

MAX_LAG = 20


def backpressure_refusals(pipeline: Pipeline) -> float:
    """503s the ingest answered because the group lagged MAX_LAG entries or more."""
    samples = metric_samples(pipeline.ingest_port, "streamfn_ingest_rejections_total")
    return sum(v for labels, v in samples if labels["reason"] == "backpressure")


def test_ingest_flooded_past_max_lag(pipeline: Pipeline) -> None:
    """The producer backs off on 503 + Retry-After, then delivers everything: lost 0."""
    # CLAIM_IDLE_MS above the freeze: entries a frozen poller holds are its own to finish, not
    # reclaimed under it the moment it resumes (the stall bound the README documents).
    pipeline.start("a", "b", MAX_LAG=str(MAX_LAG), CLAIM_IDLE_MS="60000")
    pipeline.signal_pollers(signal.SIGSTOP)
    run = pipeline.produce(2000, seed=808, batch=20)
    pipeline.wait(lambda: backpressure_refusals(pipeline) >= 5, 30, "503s at MAX_LAG")
    assert pipeline.group()["lag"] >= MAX_LAG
    pipeline.signal_pollers(signal.SIGCONT)
    summary = pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally("ingest_flooded")
    assert summary["throttled"] > 0, summary
    assert (summary["sent"], summary["accepted"], summary["undelivered"]) == (2000, 2000, 0)
    pipeline.check(tally)
