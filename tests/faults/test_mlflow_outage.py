"""Faults 4 and 5: the MLflow registry unreachable after warm-up, and during a cold start."""

from __future__ import annotations

import time

import pytest

from streamfn.core.settings import SEED_MODELS
from streamfn.data.synth import RecordSampler, load_profile
from tests.faults.parts import Registry
from tests.faults.pipeline import DLQ, GROUP, STREAM, Pipeline
from tests.faults.tally import epoch_s

pytestmark = [pytest.mark.faults, pytest.mark.slow]

DOWN_S = 10.0
# Whole-batch failures never dead-letter (README): a ceiling this low makes the cold-start case
# fail if they did, since its entries are delivered more often than this during the outage.
MAX_DELIVERIES = 2


def test_mlflow_down_after_warm_up(pipeline: Pipeline, registry: Registry) -> None:
    """Warm pollers keep serving their cached versions while the registry is down: lost 0."""
    pipeline.start("a", "b", MODEL_REFRESH_S="1")  # the alias is re-resolved during the outage
    run = pipeline.produce(3000, seed=404, rate=250)  # ~12 s of traffic, around the outage
    pipeline.wait_rows(300, "before the outage")
    pipeline.mlflow.stop()
    down = time.time()
    time.sleep(DOWN_S)  # the fault: every connection to MLflow is refused
    up = time.time()
    pipeline.mlflow.start()
    pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally("mlflow_down_warm")
    refreshes = pipeline.log_lines("model refresh failed", "a", "b")
    assert refreshes, f"the pollers never noticed the outage\n{pipeline.logs()}"
    # Served during the outage, not caught up after it: rows predicted while it lasted, and no
    # batch failed whole.
    during = [r for r in pipeline.rows() if down + 1 < epoch_s(r["predicted_at"]) < up - 1]
    assert len(during) > 1000, f"{len(during)} rows predicted during the outage"
    assert pipeline.poller_total("streamfn_infer_outages_total", "a", "b") == 0, pipeline.logs()
    versions = {(r["model"], r["model_version"]) for r in pipeline.rows()}
    assert versions == set(registry.champions.items())
    for poller in ("a", "b"):  # served from the cache: loaded once, never again
        assert pipeline.model_loads(poller) == dict.fromkeys(registry.champions.items(), 1.0)
    pipeline.check(tally)


def test_mlflow_down_during_cold_start(pipeline: Pipeline) -> None:
    """Cold pollers fail batches whole, nothing is dead-lettered; all is written once it is back."""
    pipeline.env["MAX_DELIVERIES"] = str(MAX_DELIVERIES)
    # The ingest has read each model's schema (and kept it in Redis) before the outage.
    pipeline.start_ingest()
    sampler = RecordSampler(load_profile(), seed=504)
    for model in SEED_MODELS:
        pipeline.send(model, sampler.records(1))
    pipeline.mlflow.stop()
    pipeline.start_pollers("a", "b")
    pipeline.finish(pipeline.produce(1500, seed=505))

    def redelivered() -> bool:
        pending = pipeline.r.xpending_range(STREAM, GROUP, "-", "+", 1000)
        return max((p["times_delivered"] for p in pending), default=0) > MAX_DELIVERIES

    pipeline.wait(redelivered, 60, f"entries delivered more than {MAX_DELIVERIES} times")
    assert pipeline.r.xlen(DLQ) == 0, pipeline.logs()
    assert not pipeline.rows()
    pipeline.mlflow.start()
    pipeline.drain()
    tally = pipeline.tally("mlflow_down_cold_start")
    assert pipeline.poller_total("streamfn_infer_outages_total", "a", "b") > 0
    assert {r["model"] for r in pipeline.rows()} == set(SEED_MODELS)
    # Both pollers come back cold: a first batch loads the models (~5 s here), longer than this
    # case's CLAIM_IDLE_MS; the poller holds that batch's entries meanwhile, so its peer does not
    # take them over and write them too.
    pipeline.check(tally)
