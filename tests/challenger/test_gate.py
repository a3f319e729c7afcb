"""`streamfn promote`, `rollback` and `backtest` against a real registry, Redis and S3: the gate
refuses and promotes on live labels, records both decisions, rollback restores, and the
backtest agrees with the shadow rows of the same records."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow import MlflowClient

from streamfn.challenger import backtest, gate
from streamfn.cli import main
from streamfn.cli.common import Exit
from streamfn.core.environment import get_settings
from streamfn.core.settings import SEED_MODELS, Settings
from streamfn.infer import handler
from streamfn.monitor import stats
from streamfn.sink.bucket import Bucket
from tests.challenger.conftest import Versions
from tests.challenger.test_shadow import (
    messages,
    send_labels,
    shadow_of,
    shadowed,
    window_counts,
)
from tests.challengers import CHALLENGED, set_challenger
from tests.conftest import bucket_rows
from tests.factories import batch_event

pytestmark = pytest.mark.slow
NAME = SEED_MODELS[CHALLENGED]


@pytest.fixture
def cli_env(
    infer_settings: Settings, sqlite_registry: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The environment `streamfn` reads, for commands run in this process."""
    monkeypatch.setenv("REDIS_URL", infer_settings.REDIS_URL)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_registry)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def champion_kept(sqlite_registry: str) -> Iterator[str]:
    """The champion version before the test; the alias goes back to it afterwards."""
    client = MlflowClient(sqlite_registry, sqlite_registry)
    before = client.get_model_version_by_alias(NAME, "champion").version
    yield str(before)
    client.set_registered_model_alias(NAME, "champion", before)


def tags(uri: str, version: str) -> dict[str, str]:
    found = MlflowClient(uri, uri).get_model_version(NAME, version).tags
    return {k.removeprefix(gate.TAG): v for k, v in found.items() if k.startswith(gate.TAG)}


def history(found: dict[str, str]) -> list[dict[str, Any]]:
    """The decisions recorded on a version, oldest first."""
    return [json.loads(v) for k, v in sorted(found.items()) if k.startswith("decision.")]


def aliases(uri: str) -> dict[str, str]:
    found = MlflowClient(uri, uri).get_registered_model(NAME).aliases
    return {alias: str(version) for alias, version in found.items()}


def label_as_challenger(ctx: handler.InferContext, settings: Settings, redis_url: str,
                        s3: Any) -> int:  # fmt: skip
    """Labels that agree with the challenger on every shadow row: it scores better."""
    labels = [{"message_id": r["message_id"], "record_index": int(r["record_index"]),
               "label": r["prediction"]} for r in shadow_of(s3)]  # fmt: skip
    return asyncio.run(send_labels(redis_url, labels, ctx, settings))


def test_promote_refuses_below_the_gate_then_promotes_and_rollback_restores(
    sqlite_registry: str, challenge: Versions, champion_kept: str, infer_settings: Settings,
    s3: Any, redis_url: str, cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Earlier tests of the session (a canary's rollback) may have tagged decisions already.
    before = {v: len(history(tags(sqlite_registry, v))) for v in (challenge.weaker, champion_kept)}
    ctx = shadowed(sqlite_registry, challenge.weaker, infer_settings, messages(5, 40, seed=21))
    assert label_as_challenger(ctx, infer_settings, redis_url, s3) == 200

    assert main(["promote", "--model", CHALLENGED, "--min-labelled", "1000"]) == Exit.REFUSED
    said = capsys.readouterr().err
    assert "refused" in said
    assert "200 labelled" in said
    assert "1,000 (--min-labelled)" in said
    assert tags(sqlite_registry, challenge.weaker)["decision"] == "refused"
    assert tags(sqlite_registry, champion_kept)["decision"] == "challenger refused"

    assert main(["promote", "--model", CHALLENGED, "--min-labelled", "150", "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().err
    assert aliases(sqlite_registry) == {"champion": champion_kept, "challenger": challenge.weaker}

    assert main(["promote", "--model", CHALLENGED, "--min-labelled", "150"]) == 0
    assert aliases(sqlite_registry) == {"champion": challenge.weaker}
    promoted = tags(sqlite_registry, challenge.weaker)
    assert promoted["decision"] == "promoted"
    assert promoted["previous_champion"] == champion_kept
    evidence = history(promoted)[-1]
    assert (evidence["decision"], evidence["labelled"]) == ("promoted", 200)
    assert evidence["challenger_macro_f1"] == 1.0 > evidence["champion_macro_f1"]

    # The infer function follows the alias at its next refresh: new rows carry the new version.
    ctx.models._refresh_s = 0  # the next batch re-resolves (the poller's MODEL_REFRESH_S)
    ctx.models.get(CHALLENGED)
    ctx.models.settle()
    later = messages(2, 10, seed=22, start=100)
    assert handler.handle(batch_event(*later), ctx)["batchItemFailures"] == []
    newest = {
        r["model_version"] for r in bucket_rows(s3) if r["message_id"].startswith("17960000001")
    }
    assert newest == {challenge.weaker}

    assert main(["rollback", "--model", CHALLENGED]) == 0
    assert aliases(sqlite_registry) == {"champion": champion_kept}
    assert tags(sqlite_registry, challenge.weaker)["decision"] == "rolled back"
    # Every decision stays in the registry, oldest first, on both versions.
    told = ["refused", "promoted", "rolled back"]
    for version in (challenge.weaker, champion_kept):
        added = history(tags(sqlite_registry, version))[before[version] :]
        assert [e["decision"] for e in added] == told, version
    assert main(["rollback", "--model", CHALLENGED]) == Exit.REFUSED  # nothing more to roll back to
    assert "no previous champion" in capsys.readouterr().err


def test_the_gate_says_why_it_refuses() -> None:
    few = gate.Evidence("3", "5", 900, 0.9, 120, 0.88, 0.91)
    assert gate.decide(few, 200, 0.0).reason.startswith(
        "refused: challenger v5 has 120 labelled live rows scored beside champion v3, and the "
        "gate needs 200 (--min-labelled)"
    )
    worse = gate.Evidence("3", "5", 900, 0.9, 400, 0.88, 0.85)
    assert not gate.decide(worse, 200, 0.02).promote
    assert "below champion v3's 0.880 minus 0.02" in gate.decide(worse, 200, 0.02).reason
    assert gate.decide(worse, 200, 0.05).promote


def test_the_estimated_gate_reads_the_scores_estimated_on_the_shadow_rows() -> None:
    # No labels at all, 900 shadow rows both calibrations estimated.
    unlabelled = gate.Evidence("3", "5", 900, 0.9, 0, None, None, 900, 0.88, 0.86)
    assert "0 labelled live rows" in gate.decide(unlabelled, 200, 0.0).reason
    found = gate.decide(unlabelled, 200, 0.0, "estimated")
    assert not found.promote
    assert found.reason == (
        "refused: challenger v5 scores estimated macro F1 0.860 on 900 live rows with estimated "
        "scores, below champion v3's 0.880 minus 0 (--min-delta)"
    )
    assert gate.decide(unlabelled, 200, 0.03, "estimated").promote
    uncalibrated = gate.Evidence("3", "5", 900, 0.9, 0, None, None, 0, None, None)
    assert "need a calibration" in gate.decide(uncalibrated, 200, 0.0, "estimated").reason


def test_backtest_agrees_with_the_shadow_rows_of_the_same_records(
    sqlite_registry: str, challenge: Versions, infer_settings: Settings, s3: Any, redis_url: str,
    cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    ctx = shadowed(sqlite_registry, challenge.weaker, infer_settings,
                   messages(8, 50, seed=23), messages(4, 25, seed=24, start=50))  # fmt: skip
    label_as_challenger(ctx, infer_settings, redis_url, s3)
    shadow = shadow_of(s3)
    agreeing = sum(r["prediction"] == r["champion_prediction"] for r in shadow)
    assert ctx.shadow is not None
    candidate = ctx.shadow.challengers.get(CHALLENGED)
    assert candidate is not None
    bucket = Bucket.from_settings(infer_settings)
    today = dt.datetime.now(dt.UTC)
    keys = backtest.object_keys(bucket, CHALLENGED, backtest.days(None, today.date(), today))
    outcome = backtest.backtest(candidate, bucket, keys, ctx.redis, ctx.keys)
    assert (outcome.rows, outcome.agreeing) == (len(shadow), agreeing) == (500, agreeing)
    labelled, _, _, _, candidate_f1 = outcome.scores()
    live = stats.challenger_report(window_counts(redis_url), challenge.weaker, None, 0.2)
    assert (labelled, candidate_f1) == (live["labelled"], live["macro_f1"]) == (500, 1.0)

    assert main(["backtest", "--model", CHALLENGED, "--date", today.strftime("%Y-%m-%d")]) == 0
    said = capsys.readouterr().out
    assert f"agreement {agreeing / 500:.2%}" in said
    assert "500 labelled rows" in said


def test_promote_without_redis_decides_nothing_and_says_where_it_looked(
    sqlite_registry: str, challenge: Versions, champion_kept: str, cli_env: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    set_challenger(sqlite_registry, challenge.weaker)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    assert main(["promote", "--model", CHALLENGED, "--min-labelled", "1"]) == Exit.OUTAGE
    assert "REDIS_URL=redis://127.0.0.1:1/0, which did not answer" in capsys.readouterr().err
    assert aliases(sqlite_registry) == {"champion": champion_kept, "challenger": challenge.weaker}
