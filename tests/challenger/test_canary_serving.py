"""The canary in the infer function, invoked directly: the hashed share its challenger serves
(rows under predictions/, states naming it), the champion scoring those messages in shadow,
their window counts in both directions, exactly once across crashes and a widening share, and
a challenger that cannot serve its share."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis
from sklearn.metrics import f1_score

from streamfn.challenger import gate
from streamfn.core import crash, message_state
from streamfn.core.canaries import Canary
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.infer import handler
from streamfn.infer.canary import REFRESH_S, chosen
from tests.challenger.conftest import Versions
from tests.challenger.test_shadow import context, messages, send_labels, shadow_of
from tests.challengers import CHALLENGED, set_challenger
from tests.conftest import bucket_rows
from tests.factories import batch_event

pytestmark = pytest.mark.slow


def canary_context(uri: str, version: str, settings: Settings) -> handler.InferContext:
    """An infer context with `version` as the challenger, loaded, and a clock we move."""
    set_challenger(uri, version)
    ctx = context(settings, version)
    assert ctx.canary is not None
    ctx.canary.clock = lambda: 0.0  # the share is read again only when a test moves it
    return ctx


def set_share(redis_url: str, version: str, share: float) -> None:
    """What `streamfn canary` keeps in Redis for a model."""
    canary = Canary(version, share, steps=(share,))
    redis.Redis.from_url(redis_url).hset(Keys().canary(CHALLENGED), mapping=canary.to_hash())


def reread(ctx: handler.InferContext) -> None:
    """Let the router read the share again (REFRESH_S has passed)."""
    assert ctx.canary is not None
    now = ctx.canary.clock() + REFRESH_S
    ctx.canary.clock = lambda: now


def versions_by_message(rows: list[dict[str, str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["message_id"], set()).add(row["model_version"])
    return found


def windows(redis_url: str) -> dict[str, Counter[str]]:
    """Each version's window counts of the challenged model, summed over its windows."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    keys, summed = Keys(), {}
    for member in r.zrange(keys.window_index(CHALLENGED), 0, -1):
        version, start = member.rsplit(":", 1)
        counts = r.hgetall(keys.window(CHALLENGED, version, int(start)))
        summed.setdefault(version, Counter()).update({k: int(v) for k, v in counts.items()})
    return summed


def states(redis_url: str, ids: list[str]) -> dict[str, message_state.MessageState]:
    r = redis.Redis.from_url(redis_url)
    return {i: message_state.decode(r.get(Keys().result(i))) for i in ids}


def test_the_share_is_served_by_the_challenger_and_scored_by_the_champion_in_shadow(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str
) -> None:
    ctx = canary_context(sqlite_registry, challenge.weaker, make_settings(CANARY_SHARE="0.5"))
    champion = ctx.models.get(CHALLENGED).version
    batch = messages(40, 5, seed=31)
    assert handler.handle(batch_event(*batch), ctx)["batchItemFailures"] == []
    canary = {m["messageId"] for m in batch if chosen(m["messageId"], 0.5)}
    assert 10 < len(canary) < 30
    served = bucket_rows(s3)
    assert len(served) == 200
    expected = {m["messageId"]: {challenge.weaker if m["messageId"] in canary else champion}
                for m in batch}  # fmt: skip
    assert versions_by_message(served) == expected
    found = states(redis_url, list(expected))
    assert {i: {s["model_version"]} for i, s in found.items()} == expected
    # Every served row has one shadow row by the other version, naming the served one.
    by_key = {(r["message_id"], r["record_index"]): r for r in served}
    shadow = shadow_of(s3)
    assert Counter((r["message_id"], r["record_index"]) for r in shadow) == Counter(
        dict.fromkeys(by_key, 1)
    )
    for row in shadow:
        ours = by_key[(row["message_id"], row["record_index"])]
        assert {row["model_version"], ours["model_version"]} == {champion, challenge.weaker}
        assert (row["champion_version"], row["champion_prediction"]) == (
            ours["model_version"], ours["prediction"],
        )  # fmt: skip
    # The challenger's window counts its served rows, and the champion's on them in shadow.
    counted = windows(redis_url)
    rows = 5 * len(canary)
    mine, theirs = counted[challenge.weaker], counted[champion]
    assert (mine["records"], mine["canary"], mine[f"s:{champion}:n"]) == (rows, rows, rows)
    assert theirs["records"] == theirs[f"s:{challenge.weaker}:n"] == 200 - rows
    assert "canary" not in theirs
    assert "canary_failed" not in mine
    agreeing = sum(r["prediction"] == r["champion_prediction"] for r in shadow
                   if r["model_version"] == champion)  # fmt: skip
    assert mine[f"s:{champion}:a"] == agreeing < rows


def test_the_share_streamfn_canary_keeps_wins_for_its_version_only(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str
) -> None:
    ctx = canary_context(sqlite_registry, challenge.weaker, make_settings(CANARY_SHARE="0.5"))
    set_share(redis_url, "another version", 0.9)  # not this challenger's: CANARY_SHARE holds
    first = messages(30, 2, seed=32)
    assert handler.handle(batch_event(*first), ctx)["batchItemFailures"] == []
    set_share(redis_url, challenge.weaker, 0.0)  # rolled back: no canary row after the refresh
    reread(ctx)
    second = messages(30, 2, seed=33, start=100)
    assert handler.handle(batch_event(*second), ctx)["batchItemFailures"] == []
    found = versions_by_message(bucket_rows(s3))
    served = {i for i, v in found.items() if challenge.weaker in v}
    assert served == {m["messageId"] for m in first if chosen(m["messageId"], 0.5)}
    assert served, "the first batch should have had canary messages"


@pytest.mark.parametrize("step", ["after_intent", "after_put"])
def test_a_crash_then_redelivery_under_a_wider_share_serves_each_message_once_by_one_version(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str,
    step: crash.Step,
) -> None:  # fmt: skip
    ctx = canary_context(sqlite_registry, challenge.weaker, make_settings())
    set_share(redis_url, challenge.weaker, 0.0)
    ctx.writer.checkpoint = crash.raise_at(step)
    batch = messages(20, 3, seed=34)
    with pytest.raises(crash.Crash):  # the champion's object of the whole batch, then dead
        handler.handle(batch_event(*batch), ctx)
    set_share(redis_url, challenge.weaker, 0.6)  # widened while the batch was away
    reread(ctx)
    assert handler.handle(batch_event(*batch), ctx)["batchItemFailures"] == []
    served = bucket_rows(s3)
    assert Counter((r["message_id"], r["record_index"]) for r in served) == Counter(
        {(m["messageId"], str(i)): 1 for m in batch for i in range(3)}
    )
    found = versions_by_message(served)
    assert all(len(v) == 1 for v in found.values())
    # Rows written before the crash stay the champion's, and the state says so; rows not
    # written then follow the wider share.
    champion = ctx.models.get(CHALLENGED).version
    widened = {m["messageId"] for m in batch if chosen(m["messageId"], 0.6)}
    assert widened
    expected = champion if step == "after_put" else challenge.weaker
    assert {found[i].pop() for i in widened} == {expected}
    recorded = states(redis_url, list(found))
    assert {i: s["model_version"] for i, s in recorded.items()} == {
        r["message_id"]: r["model_version"] for r in served
    }
    shadow = Counter((r["message_id"], r["record_index"]) for r in shadow_of(s3))
    assert set(shadow.values()) == {1}
    assert len(shadow) == 60
    counted = windows(redis_url)
    assert sum(c["records"] for c in counted.values()) == 60


@pytest.mark.parametrize("breakage", ["gone", "raising"])
def test_a_challenger_that_cannot_serve_leaves_its_share_to_the_champion_and_is_counted(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str,
    breakage: str,
) -> None:  # fmt: skip
    broken = getattr(challenge, breakage)
    set_challenger(sqlite_registry, broken)
    ctx = handler.build_context(make_settings(CANARY_SHARE="0.5"))
    assert ctx.shadow is not None
    ctx.shadow.challengers.get(CHALLENGED)
    ctx.shadow.challengers.settle()
    batch = messages(30, 4, seed=35)
    assert handler.handle(batch_event(*batch), ctx)["batchItemFailures"] == []
    served = bucket_rows(s3)
    champion = ctx.models.get(CHALLENGED).version
    assert len(served) == 120
    assert {r["model_version"] for r in served} == {champion}
    canary = [m for m in batch if chosen(m["messageId"], 0.5)]
    counted = windows(redis_url)
    assert counted[broken]["canary_failed"] == 4 * len(canary) > 0
    assert counted[broken]["records"] == 0


def test_labels_score_both_versions_in_both_directions_and_the_gate_sums_them(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str
) -> None:
    settings = make_settings(CANARY_SHARE="0.5")
    ctx = canary_context(sqlite_registry, challenge.weaker, settings)
    champion = ctx.models.get(CHALLENGED).version
    assert handler.handle(batch_event(*messages(40, 5, seed=36)), ctx)["batchItemFailures"] == []
    # Each record's prediction by each version, whichever served it.
    by_version: dict[str, dict[tuple[str, str], str]] = {champion: {}, challenge.weaker: {}}
    for row in [*bucket_rows(s3), *shadow_of(s3)]:
        by_version[row["model_version"]][(row["message_id"], row["record_index"])] = row[
            "prediction"
        ]
    records = sorted(by_version[champion])
    assert sorted(by_version[challenge.weaker]) == records
    # Ground truth: the class after the champion's for a third of the records, so both err.
    truth = {key: str((int(by_version[champion][key]) + (i % 3 == 0)) % 3)
             for i, key in enumerate(records)}  # fmt: skip
    labels = [{"message_id": m, "record_index": int(i), "label": t} for (m, i), t in truth.items()]
    assert asyncio.run(send_labels(redis_url, labels, ctx, settings)) == 200
    found = gate.evidence(redis.Redis.from_url(redis_url), Keys(), CHALLENGED, champion,
                          challenge.weaker)  # fmt: skip
    assert (found.compared, found.labelled) == (200, 200)

    def macro_f1(version: str) -> float:
        y_true = [truth[k] for k in records]
        y_pred = [by_version[version][k] for k in records]
        return round(float(f1_score(y_true, y_pred, average="macro")), 4)

    assert (found.champion_f1, found.challenger_f1) == (
        macro_f1(champion), macro_f1(challenge.weaker),
    )  # fmt: skip
    assert found.challenger_f1 != found.champion_f1
