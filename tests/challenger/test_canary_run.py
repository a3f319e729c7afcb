"""`streamfn canary`'s run against the infer function in process, a real Redis, the session's
SQLite registry and moto's S3, on a clock the test moves: a good challenger widens through
every step and reaches promote's gate, a worse one is rolled back at the first step (and serves
nothing after the refresh), a restarted run resumes its step (from the tags when Redis lost
it), a rollback by hand stops the running command, and two commands refuse each other."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from mlflow import MlflowClient
from redis.asyncio import Redis as AsyncRedis

from streamfn.challenger import gate as gates
from streamfn.challenger.canary import CanaryError, CanaryRun, Plan
from streamfn.challenger.canary_state import (
    STATE_TAG,
    CanaryLock,
    CanaryLockedError,
    CanaryStore,
)
from streamfn.challenger.judge import Thresholds
from streamfn.core.canaries import PROMOTED, ROLLED_BACK, Canary
from streamfn.core.keys import Keys
from streamfn.core.settings import SEED_MODELS, Settings
from streamfn.infer import handler
from streamfn.infer.canary import REFRESH_S
from streamfn.monitor import feedback
from tests.challenger.conftest import Versions
from tests.challenger.test_shadow import context
from tests.challengers import CHALLENGED, set_challenger
from tests.conftest import bucket_rows
from tests.factories import batch_event, sqs_record
from tests.shadowed import labelled_records

pytestmark = pytest.mark.slow
NAME = SEED_MODELS[CHALLENGED]
WINDOW_S = 10
T0 = 1_796_000_000  # epoch s, a window's start
PER_WINDOW = 60  # messages of 5 records: 300 rows a window


class Clock:
    """The time as the test says (epoch seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def champion_kept(sqlite_registry: str) -> Iterator[str]:
    """The champion before the test; the alias goes back to it, its tags of canaries cleared."""
    client = MlflowClient(sqlite_registry, sqlite_registry)
    before = str(client.get_model_version_by_alias(NAME, "champion").version)
    yield before
    client.set_registered_model_alias(NAME, "champion", before)


class Harness:
    """The infer function and a canary run of the challenged model, on one clock."""

    def __init__(self, uri: str, version: str, settings: Settings, redis_url: str) -> None:
        self.clock = Clock(T0 + 1)
        self.settings = settings
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        self.ctx = context_with(uri, version, settings)
        assert self.ctx.canary is not None
        self.ctx.canary.clock = self.clock
        self.client = MlflowClient(uri, uri)
        self.gate = gates.Gate(self.client, NAME, "champion", "challenger")
        self.lines: list[str] = []
        self.sent = 0

    def run(self, steps: tuple[float, ...], **plan: Any) -> CanaryRun:
        """A canary run as the command makes it (a fresh one: what a restart builds)."""
        found = Plan(CHALLENGED, steps, WINDOW_S, Thresholds(min_rows=100), WINDOW_S, **plan)
        store = CanaryStore(self.redis, Keys(), self.gate, CHALLENGED)
        return CanaryRun(found, self.redis, Keys(), self.gate, store, self.lines.append,
                         self.clock)  # fmt: skip

    def traffic(self, window: int, seed: int) -> list[str]:
        """A window's messages (received in the window starting at `window`), predicted and
        labelled; their ids."""
        pairs = labelled_records(PER_WINDOW * 5, seed)
        batch = [sqs_record(f"{window * 1000 + self.sent + i}-0", CHALLENGED,
                            [r for r, _ in pairs[i * 5 : (i + 1) * 5]])
                 for i in range(PER_WINDOW)]  # fmt: skip
        self.sent += PER_WINDOW
        assert handler.handle(batch_event(*batch), self.ctx)["batchItemFailures"] == []
        rates = [rate for _, rate in pairs]
        labels = [{"message_id": m["messageId"], "record_index": j, "burn_rate": rate}
                  for i, m in enumerate(batch) for j, rate in enumerate(rates[i * 5 : i * 5 + 5])
                  if rate is not None]  # fmt: skip
        assert asyncio.run(self.label(labels)).counted == len(labels)
        return [m["messageId"] for m in batch]

    async def label(self, labels: list[dict[str, Any]]) -> int:
        client = AsyncRedis.from_url(self.redis_url)
        try:
            schema = self.ctx.models.get(CHALLENGED).schema
            joined = await feedback.join(client, labels, {CHALLENGED: schema}, self.settings)
            return await feedback.count_once(client, Keys(), joined, 3600)
        finally:
            await client.aclose()

    def kept(self) -> Canary:
        found = Canary.from_hash(self.redis.hgetall(Keys().canary(CHALLENGED)))
        assert found is not None
        return found

    def decision(self, version: str) -> str:
        """The latest decision tagged on a version."""
        return str(self.client.get_model_version(NAME, version).tags[gates.TAG + "decision"])

    def history(self, version: str) -> list[str]:
        """The decisions of the version's history, oldest first."""
        tags = self.client.get_model_version(NAME, version).tags
        return [json.loads(v)["decision"] for k, v in sorted(tags.items())
                if k.startswith(gates.TAG + "decision.")]  # fmt: skip


def context_with(uri: str, version: str, settings: Settings) -> handler.InferContext:
    set_challenger(uri, version)
    return context(settings, version)


@pytest.fixture
def harness(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str,
    champion_kept: str, request: pytest.FixtureRequest,
) -> Harness:  # fmt: skip
    """The challenger the test names, with no canary recorded on it by an earlier test."""
    name = request.param
    version = request.getfixturevalue("good") if name == "good" else getattr(challenge, name)
    client = MlflowClient(sqlite_registry, sqlite_registry)
    if gates.TAG + STATE_TAG in client.get_model_version(NAME, version).tags:
        client.delete_model_version_tag(NAME, version, gates.TAG + STATE_TAG)
    return Harness(sqlite_registry, version, make_settings(MONITOR_WINDOW_S=str(WINDOW_S)),
                   redis_url)  # fmt: skip


@pytest.mark.parametrize("harness", ["good"], indirect=True)
def test_a_good_challenger_widens_through_every_step_and_reaches_the_gate(
    harness: Harness, good: str, champion_kept: str
) -> None:
    run = harness.run((0.25, 0.5), min_labelled=100, min_delta=0.05)
    assert run.start().share == 0.25
    harness.traffic(T0 + 10, seed=41)
    harness.clock.now = T0 + 29  # the window is not final yet: nothing judged
    assert run.tick() is None
    assert harness.kept().share == 0.25
    harness.clock.now = T0 + 31
    assert run.tick() is None
    assert (harness.kept().share, harness.kept().step) == (0.5, 1)
    served = {r["message_id"] for r in bucket_rows(harness.ctx.writer.bucket.client)
              if r["model_version"] == good}  # fmt: skip
    assert 0.1 < len(served) / PER_WINDOW < 0.4  # about a quarter
    harness.clock.now += REFRESH_S  # the pollers follow: half the messages now
    harness.traffic(T0 + 40, seed=42)
    harness.clock.now = T0 + 61
    assert run.tick() == PROMOTED
    assert harness.kept().status == PROMOTED
    assert harness.kept().share == 0.0
    aliases = harness.client.get_registered_model(NAME).aliases
    assert (str(aliases["champion"]), "challenger" in aliases) == (good, False)
    assert harness.history(good)[-2:] == ["canary widened to 50%", "promoted"]
    assert harness.decision(champion_kept) == "challenger promoted"
    assert any("window" in line and "holds" in line for line in harness.lines)


@pytest.mark.parametrize("harness", ["weaker"], indirect=True)
def test_a_worse_challenger_is_rolled_back_at_the_first_step_and_serves_nothing_after(
    harness: Harness, challenge: Versions, champion_kept: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = harness.run((0.25, 0.5))
    run.start()
    first = harness.traffic(T0 + 10, seed=43)
    harness.clock.now = T0 + 31
    with caplog.at_level(logging.WARNING, logger="streamfn.challenger.canary"):
        assert run.tick() == ROLLED_BACK
    kept = harness.kept()
    assert (kept.share, kept.status, kept.rollbacks) == (0.0, ROLLED_BACK, 1)
    assert "below the champion's" in kept.reason
    [line] = [r for r in caplog.records if r.getMessage() == "canary rolled back"]
    assert (line.challenger, line.share, line.step) == (challenge.weaker, 0.25, 1)  # type: ignore[attr-defined]
    assert harness.decision(challenge.weaker) == "canary rolled back"
    assert harness.decision(champion_kept) == f"canary rolled back (challenger v{challenge.weaker})"
    # The version's tag keeps the state, for a restart that finds Redis empty.
    tag = harness.client.get_model_version(NAME, challenge.weaker).tags[gates.TAG + "canary"]
    assert Canary.from_hash(json.loads(tag)) == kept
    harness.clock.now += REFRESH_S  # the rollback's refresh
    after = set(harness.traffic(T0 + 40, seed=44))
    rows = bucket_rows(harness.ctx.writer.bucket.client)
    canary_rows = {r["message_id"] for r in rows if r["model_version"] == challenge.weaker}
    assert canary_rows & set(first), "the first step served some messages by the challenger"
    assert not canary_rows & after
    with pytest.raises(CanaryError, match="--again"):
        harness.run((0.25, 0.5)).start()


@pytest.mark.parametrize("harness", ["good"], indirect=True)
def test_a_restarted_run_resumes_its_step_from_redis_or_from_the_tags(harness: Harness) -> None:
    run = harness.run((0.2, 0.4, 0.8))
    run.start()
    harness.traffic(T0 + 10, seed=45)
    harness.clock.now = T0 + 31
    assert run.tick() is None
    widened = harness.kept()
    assert (widened.step, widened.share) == (1, 0.4)
    harness.clock.now = T0 + 35
    resumed = harness.run((0.2, 0.4, 0.8)).start()
    assert (resumed.step, resumed.share, resumed.since_ms) == (1, 0.4, widened.since_ms)
    harness.redis.delete(Keys().canary(CHALLENGED))  # Redis lost it: the tag remembers
    again = harness.run((0.2, 0.4, 0.8)).start()
    assert (again.step, again.share, again.since_ms) == (1, 0.4, widened.since_ms)
    assert harness.kept().share == 0.4
    assert any("resumes at step 2 of 3" in line for line in harness.lines)


@pytest.mark.parametrize("harness", ["good"], indirect=True)
def test_a_rollback_by_hand_stops_the_running_command_and_two_commands_refuse_each_other(
    harness: Harness,
) -> None:
    first, second = (CanaryLock(harness.redis, Keys().canary_lock(CHALLENGED)) for _ in "ab")
    first.take()
    with pytest.raises(CanaryLockedError, match="another `streamfn canary`"):
        second.take()
    run = harness.run((0.25, 0.5))
    run.start()
    by_hand = harness.run((0.25, 0.5))
    by_hand.attach()
    by_hand.roll_back("rolled back by hand")
    assert run.tick() == ROLLED_BACK
    assert harness.kept().share == 0.0
    first.release()
    second.take()
    second.release()
