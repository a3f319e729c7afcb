"""Fault 9: `streamfn canary` against real processes (redis-server, an MLflow server, moto's S3
server, ingest, two pollers, producers sending ground truth): a good challenger widens through
every step and passes promote's gate; a worse one is rolled back at the first step and serves
no row after the rollback's refresh; a canary command killed mid-way refuses a second one while
its lock lasts and is resumed from its step by the next. Every record is written once in each.
(A poller SIGKILLed during a canary: tests/faults/test_poller_kill.py.)"""

from __future__ import annotations

import json

import httpx
import pytest
from mlflow import MlflowClient

from streamfn.cli.common import Exit
from streamfn.core.canaries import PROMOTED, ROLLED_BACK, Canary
from streamfn.core.keys import Keys
from streamfn.core.metrics import CANARY_ROLLBACKS, sample_name
from streamfn.core.settings import SEED_MODELS
from streamfn.infer.canary import REFRESH_S
from streamfn.local.stack import Process, cli
from tests.challengers import CHALLENGED
from tests.faults.parts import Registry, metric_samples
from tests.faults.pipeline import Pipeline
from tests.faults.tally import epoch_s

pytestmark = [pytest.mark.faults, pytest.mark.slow]

NAME = SEED_MODELS[CHALLENGED]
WINDOW_S = "2"  # short windows: a step is judged within seconds
ENV = {"MONITOR_WINDOW_S": WINDOW_S}


def canary(pipeline: Pipeline, name: str, *args: str) -> Process:
    """`streamfn canary --model lightgbm …` as a child of the pipeline."""
    return pipeline.spawn(name, cli("canary", "--model", CHALLENGED, *args))


def ended(pipeline: Pipeline, child: Process, timeout: float = 90) -> int:
    """Wait for a canary command to exit; its exit code."""
    pipeline.wait(lambda: not child.running, timeout, f"{child.name} ended")
    return int(child.popen.returncode)


def state(pipeline: Pipeline) -> Canary | None:
    """The model's canary as Redis keeps it, if any yet."""
    return Canary.from_hash(pipeline.r.hgetall(Keys().canary(CHALLENGED)))


def kept(pipeline: Pipeline) -> Canary:
    """The model's canary as Redis keeps it (there must be one)."""
    found = state(pipeline)
    assert found is not None, pipeline.logs()
    return found


def at_step(pipeline: Pipeline, step: int) -> bool:
    """Whether the canary has reached `step` (0 the first)."""
    found = state(pipeline)
    return found is not None and found.step >= step


def served_by(pipeline: Pipeline, version: str) -> list[dict[str, str]]:
    """The rows of the challenged model served by `version`."""
    return [r for r in pipeline.rows()
            if r["model"] == CHALLENGED and r["model_version"] == version]  # fmt: skip


def history(registry: Registry, version: str) -> list[str]:
    """The decisions tagged on a version, oldest first."""
    tags = MlflowClient(registry.uri, registry.uri).get_model_version(NAME, version).tags
    return [json.loads(v)["decision"] for k, v in sorted(tags.items())
            if k.startswith("streamfn.decision.")]  # fmt: skip


def models_entry(pipeline: Pipeline) -> dict[str, object]:
    """GET /models' entry of the challenged model."""
    answer = httpx.get(f"{pipeline.env['INGEST_URL']}/models", timeout=10).json()
    return next(m for m in answer["models"] if m["model"] == CHALLENGED)


def test_a_good_challenger_widens_through_every_step_and_is_promoted(
    pipeline: Pipeline, registry: Registry, good_challenged: str
) -> None:
    pipeline.start("a", "b", **ENV)
    pipeline.wait_challenger(CHALLENGED, good_challenged, "a", "b")
    run = pipeline.produce(7500, seed=811, models=[CHALLENGED], rate=300, labels=True)
    child = canary(pipeline, "canary", "--steps", "0.2,0.5", "--every", "3s",
                   "--min-labelled", "300", "--min-delta", "0.05")  # fmt: skip
    pipeline.wait(lambda: at_step(pipeline, 1), 60, "the canary widened to 50%")
    entry = models_entry(pipeline)
    assert entry["canary"]["status"] == "widening", entry  # type: ignore[index]
    assert entry["canary"]["serving"] == 0.5, entry  # type: ignore[index]
    assert ended(pipeline, child) == 0, child.tail(30)
    assert kept(pipeline).status == PROMOTED
    assert "promote's gate: promoted" in child.log.read_text()
    assert history(registry, good_challenged)[-2:] == ["canary widened to 50%", "promoted"]
    pipeline.finish(run)
    pipeline.drain()
    assert served_by(pipeline, good_challenged), "the canary served rows"
    pipeline.challenged.clear()  # the promotion ends shadow scoring within MODEL_REFRESH_S
    pipeline.check(pipeline.tally("canary_promoted"))


def test_a_worse_challenger_is_rolled_back_at_the_first_step_and_serves_nothing_after(
    pipeline: Pipeline, registry: Registry, challenged: str
) -> None:
    pipeline.start("a", "b", **ENV)
    pipeline.wait_challenger(CHALLENGED, challenged, "a", "b")
    run = pipeline.produce(7000, seed=821, models=[CHALLENGED], rate=300, labels=True)
    child = canary(pipeline, "canary", "--steps", "0.2,0.5", "--every", "3s")
    assert ended(pipeline, child) == Exit.REFUSED, child.tail(30)
    pipeline.finish(run)
    pipeline.drain()
    state = kept(pipeline)
    assert (state.status, state.share, state.step, state.rollbacks) == (ROLLED_BACK, 0.0, 0, 1)
    [line] = pipeline.log_lines('"canary rolled back"', "canary")
    logged = json.loads(line)
    assert (logged["challenger"], logged["share"], logged["step"]) == (challenged, 0.2, 1)
    assert logged["reason"] == state.reason
    assert history(registry, challenged)[-1] == "canary rolled back"
    assert models_entry(pipeline)["canary"]["status"] == ROLLED_BACK  # type: ignore[index]
    # Rows served by the canary before the rollback; none of a message received after its
    # refresh (each poller reads the share again within REFRESH_S).
    refreshed = state.updated_ms / 1000 + REFRESH_S
    canary_rows = served_by(pipeline, challenged)
    assert canary_rows, "the first step served rows"
    late = [r for r in canary_rows if epoch_s(r["received_at"]) > refreshed]
    assert late == [], late[:3]
    assert any(epoch_s(r["received_at"]) > refreshed + 2 for r in pipeline.rows()), "no traffic"
    for poller in ("a", "b"):  # each publishes the rollbacks Redis counts
        samples = metric_samples(pipeline.metrics_ports[poller], sample_name(CANARY_ROLLBACKS))
        assert samples == [({"model": CHALLENGED}, 1.0)], (poller, samples)
    pipeline.check(pipeline.tally("canary_rolled_back"))


def test_a_killed_canary_refuses_a_second_while_its_lock_lasts_then_resumes_its_step(
    pipeline: Pipeline, registry: Registry, good_challenged: str
) -> None:
    pipeline.start("a", "b", **ENV)
    pipeline.wait_challenger(CHALLENGED, good_challenged, "a", "b")
    run = pipeline.produce(15000, seed=831, models=[CHALLENGED], rate=300, labels=True)
    args = ("--steps", "0.1,0.3,0.6", "--every", "5s", "--min-labelled", "300",
            "--min-delta", "0.05")  # fmt: skip
    lock = Keys().canary_lock(CHALLENGED)
    first = canary(pipeline, "canary-1", *args)
    pipeline.wait(lambda: pipeline.r.exists(lock), 60, "the first command holds the lock")
    second = canary(pipeline, "canary-2", *args)
    assert ended(pipeline, second, 60) == Exit.REFUSED  # the other command holds the lock
    assert "another `streamfn canary` drives" in second.log.read_text()
    pipeline.wait(lambda: at_step(pipeline, 1), 60, "the canary widened to its second step")
    first.kill()  # SIGKILL: its lock stays until it expires
    assert kept(pipeline).step == 1
    pipeline.wait(lambda: not pipeline.r.exists(lock), 30, "the dead command's lock expired")
    third = canary(pipeline, "canary-3", *args)
    assert ended(pipeline, third) == 0, third.tail(30)
    assert "resumes at step 2 of 3" in third.log.read_text()
    assert history(registry, good_challenged)[-3:] == [
        "canary widened to 30%", "canary widened to 60%", "promoted",
    ]  # fmt: skip
    pipeline.finish(run)
    pipeline.drain()
    pipeline.challenged.clear()  # promoted: shadow scoring ends within MODEL_REFRESH_S
    pipeline.check(pipeline.tally("canary_resumed"))
