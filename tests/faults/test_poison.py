"""Fault 6: poison entries amid normal traffic are dead-lettered; every other record is written."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.faults.pipeline import STREAM, Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]

MAX_DELIVERIES = 3
POISON = {
    # Fails to decode: `data` is not a list of records.
    "undecodable": {"model": "svm", "data": orjson.dumps({"Sleep Hours": 7})},
    # Decodes, but predict fails: a string where the model needs a number.
    "unpredictable": {
        "model": "knn",
        "data": orjson.dumps([{"Employee ID": "poison-1", "Sleep Hours": "seven"}]),
    },
}


def test_poison_entries_are_dead_lettered(pipeline: Pipeline) -> None:
    """Each poison entry reaches the DLQ after MAX_DELIVERIES deliveries; lost 0, duplicated 0."""
    pipeline.start("a", "b", MAX_DELIVERIES=str(MAX_DELIVERIES))
    run = pipeline.produce(1500, seed=606)
    ids = {}
    for after, (name, fields) in zip((20, 80), POISON.items(), strict=True):
        # Straight into the stream, past the ingest's validation, amid the producer's traffic.
        pipeline.wait(lambda n=after: pipeline.added() >= n, 30, "traffic before the poison")
        received_at = str(time.time_ns() // 1_000_000)
        ids[name] = pipeline.r.xadd(STREAM, {**fields, "received_at": received_at})
    pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally("poison_entry")
    dead = {entry["data"]: entry for entry in pipeline.dead_letters()}
    assert sorted(dead) == sorted(f["data"].decode() for f in POISON.values()), dead
    for entry in dead.values():
        assert entry["deliveries"] == str(MAX_DELIVERIES)
        assert entry["error"], entry
        assert entry["failed_at"].isdigit(), entry
    for message_id in ids.values():
        url = f"{pipeline.env['INGEST_URL']}/predictions/{message_id}"
        state = httpx.get(url, timeout=5).json()
        assert (state["status"], bool(state["error"])) == ("dead_letter", True), state
    pipeline.check(tally, dead_lettered=len(POISON))
