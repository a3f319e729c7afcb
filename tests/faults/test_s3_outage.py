"""Fault 3: S3 down for 10 s while records flow; batches fail whole and are retried."""

from __future__ import annotations

import time

import pytest

from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]

DOWN_S = 10.0


def test_s3_down_for_ten_seconds(pipeline: Pipeline) -> None:
    """Every record is written once after S3 comes back; nothing is dead-lettered."""
    pipeline.start("a", "b")
    run = pipeline.produce(3000, seed=303, rate=250)  # ~12 s of traffic, around the outage
    pipeline.wait_rows(300, "before the outage")
    pipeline.s3.stop()
    time.sleep(DOWN_S)  # the fault: S3 refuses every connection
    pipeline.s3.start()
    pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally("s3_down_10s")
    assert pipeline.poller_total("streamfn_infer_outages_total", "a", "b") > 0, pipeline.logs()
    pipeline.check(tally)
