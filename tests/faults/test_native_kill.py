"""A local Kinesis or SQS mapping (`streamfn poll --source`) SIGKILLed mid-stream, a replacement
started: what it held comes back (the shard's lease passes on, or the messages' visibility
timeout ends), and nothing is lost or written twice."""

from __future__ import annotations

import pytest

from streamfn.core import metrics
from streamfn.core.keys import Keys
from streamfn.core.settings import load_settings
from streamfn.stream import base as stream
from streamfn.stream.sqs import local as sqs_local
from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]

VISIBILITY_TIMEOUT_S = 3  # the SQS messages a dead poller held come back after this


@pytest.mark.parametrize("backend", ["kinesis", "sqs"])
def test_native_poller_sigkill_mid_stream_then_replaced(pipeline: Pipeline, backend: str) -> None:
    pipeline.env.update(stream.backend(backend).local_variables(pipeline.s3.endpoint))
    settings = load_settings(**pipeline.env)
    if backend == "sqs":  # a short visibility timeout: a dead poller's messages come back soon
        sqs_local.create(settings, VISIBILITY_TIMEOUT_S)
    else:
        stream.backend(backend).create_local(settings)
    pipeline.start("a", "b")
    # One request at a time on Kinesis: moto numbers a shard's records without a lock, and two
    # puts at once could take one sequence number, the second overwriting the first (a record
    # lost inside moto). One CI run lost a record in this case; AWS numbers records itself.
    concurrency = 1 if backend == "kinesis" else 4
    run = pipeline.produce(3000, seed=111 if backend == "kinesis" else 121, concurrency=concurrency)
    # "a" is working the stream: it has settled batches (and holds the next one).
    acked = metrics.sample_name(metrics.POLLER_ENTRIES)
    pipeline.wait(lambda: pipeline.poller_total(acked, "a") >= 100, 60, "poller a working")
    if backend == "kinesis":  # both pollers hold a shard (each takes its share)
        leases = pipeline.r.keys(Keys().kinesis("*", "lease:*"))
        assert sorted(pipeline.r.get(k) for k in leases) == ["a", "b"]
    pipeline.kill_poller("a")
    pipeline.start_pollers("a2")
    pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally(f"{backend}_poller_sigkill")
    pipeline.check(tally)
