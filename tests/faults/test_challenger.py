"""Fault 8: a challenger in shadow: `streamfn promote` and `rollback` move the pollers' champion
within MODEL_REFRESH_S. (Its rows under a poller's SIGKILL: tests/faults/test_poller_kill.py.)"""

from __future__ import annotations

import time

import pytest

from streamfn.cli import main
from streamfn.cli.common import Exit
from streamfn.core.environment import get_settings
from streamfn.core.settings import SEED_MODELS
from tests.challengers import CHALLENGED
from tests.faults.parts import Registry
from tests.faults.pipeline import Pipeline
from tests.faults.tally import epoch_s

pytestmark = [pytest.mark.faults, pytest.mark.slow]

NAME = SEED_MODELS[CHALLENGED]
REFRESH_S = 1.0
LOAD_S = 3.0  # a poller re-resolves within REFRESH_S; a load (if any) takes about this


def cli(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """Run a `streamfn` command in this process against the pipeline's Redis and MLflow."""
    for name in ("REDIS_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(name, pipeline.env[name])
    monkeypatch.setenv("MODEL_REFRESH_S", str(REFRESH_S))
    get_settings.cache_clear()
    try:
        return main(list(argv))
    finally:
        get_settings.cache_clear()


def versions_after(pipeline: Pipeline, moment: float) -> set[str]:
    """The versions of the challenged model's rows predicted after `moment` (epoch s)."""
    return {r["model_version"] for r in pipeline.rows()
            if r["model"] == CHALLENGED and epoch_s(r["predicted_at"]) >= moment}  # fmt: skip


def test_promote_is_gated_on_live_labels_and_rollback_restores(
    pipeline: Pipeline, registry: Registry, challenged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = registry.champions[CHALLENGED]
    pipeline.start("a", "b", MODEL_REFRESH_S=str(REFRESH_S))
    pipeline.wait_challenger(CHALLENGED, challenged, "a", "b")
    summary = pipeline.finish(pipeline.produce(900, seed=802, models=[CHALLENGED], labels=True))
    assert summary["labelled"] > 500, summary  # a record without a burn rate has no label
    pipeline.drain()
    # The weaker challenger scores below the champion on the live labels: refused as it is,
    # promoted when the gate allows it 1.0 of macro F1 below.
    assert (
        cli(pipeline, monkeypatch, "promote", "--model", CHALLENGED, "--min-labelled", "500")
        == Exit.REFUSED
    )
    assert cli(pipeline, monkeypatch, "promote", "--model", CHALLENGED, "--min-labelled", "500",
               "--min-delta", "1") == 0  # fmt: skip
    promoted_at = time.time()
    pipeline.finish(pipeline.produce(600, seed=803, models=[CHALLENGED], rate=150))
    pipeline.drain()
    assert versions_after(pipeline, promoted_at + REFRESH_S + LOAD_S) == {challenged}
    for poller in ("a", "b"):  # the challenger in memory became champion: no second load
        assert pipeline.model_loads(poller)[(CHALLENGED, challenged)] == 1.0, poller

    assert cli(pipeline, monkeypatch, "rollback", "--model", CHALLENGED) == 0
    rolled_at = time.time()
    pipeline.finish(pipeline.produce(600, seed=804, models=[CHALLENGED], rate=150))
    pipeline.drain()
    assert versions_after(pipeline, rolled_at + REFRESH_S + LOAD_S) == {champion}
    pipeline.challenged.clear()  # shadow rows stopped with the promotion
    pipeline.check(pipeline.tally("challenger_promoted_and_rolled_back"))
