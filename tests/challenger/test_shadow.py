"""Shadow scoring in the infer function, invoked directly: exactly-once shadow rows beside the
champion's, their window counts, labels for both versions, and challengers that break."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from streamfn.core import crash, metrics
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.infer import handler
from streamfn.infer.shadow import selected
from streamfn.models.schemas import ModelSchema
from streamfn.monitor import feedback, stats
from streamfn.sink.rows import RUNTIME_METADATA
from tests.challenger.conftest import Versions
from tests.challengers import CHALLENGED, set_challenger
from tests.conftest import bucket_rows
from tests.factories import assert_same_counts, batch_event, sqs_record
from tests.shadowed import sampled_records

pytestmark = pytest.mark.slow
T0 = 1_796_000_000_000  # epoch ms of the first message


def context(settings: Settings, version: str | None) -> handler.InferContext:
    """An infer context whose challenger (if any) is loaded before the first batch."""
    ctx = handler.build_context(settings)
    assert ctx.shadow is not None
    challengers = ctx.shadow.challengers
    challengers.get(CHALLENGED)
    challengers.settle()
    loaded = challengers.get(CHALLENGED)
    assert (loaded.version if loaded else None) == version
    return ctx


def shadowed(
    uri: str, version: str, settings: Settings, *batches: list[dict[str, Any]]
) -> handler.InferContext:
    """Set the challenger alias, start an infer context with it loaded, handle the batches
    (each without a failure); the context."""
    set_challenger(uri, version)
    ctx = context(settings, version)
    for batch in batches:
        assert handler.handle(batch_event(*batch), ctx)["batchItemFailures"] == []
    return ctx


def messages(count: int, per_message: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    """SQS-shaped records of `count` lightgbm messages of sampled records."""
    records = sampled_records(count * per_message, seed)
    return [
        sqs_record(
            f"{T0 + start + i}-0", CHALLENGED, records[i * per_message : (i + 1) * per_message]
        )
        for i in range(count)
    ]


def by_record(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["message_id"], r["record_index"]): r for r in rows}


def shadow_of(s3: Any) -> list[dict[str, str]]:
    return bucket_rows(s3, prefix="shadow/")


def failures(stage: str) -> float:
    return metrics.SHADOW_FAILURES.labels(CHALLENGED, stage)._value.get()


def test_every_champion_row_has_one_shadow_row_with_the_champions_prediction(
    sqlite_registry: str, challenge: Versions, infer_settings: Settings, s3: Any, redis_url: str
) -> None:
    shadowed(sqlite_registry, challenge.weaker, infer_settings, messages(6, 40, seed=11))
    champion, shadow = by_record(bucket_rows(s3)), shadow_of(s3)
    assert Counter((r["message_id"], r["record_index"]) for r in shadow) == Counter(
        dict.fromkeys(champion, 1)
    )
    for row in shadow:
        ours = champion[(row["message_id"], row["record_index"])]
        assert row["model_version"] == challenge.weaker
        assert (row["champion_version"], row["champion_prediction"]) == (
            ours["model_version"], ours["prediction"],
        )  # fmt: skip
        assert row["Employee ID"] == ours["Employee ID"]
    agreeing = sum(r["prediction"] == r["champion_prediction"] for r in shadow)
    assert 0 < agreeing < len(shadow), "the challenger should differ from the champion somewhat"
    counts = window_counts(redis_url)
    prefix = f"s:{challenge.weaker}:"
    assert (counts[prefix + "n"], counts[prefix + "a"]) == (len(shadow), agreeing)
    cells = Counter(f"{prefix}c:{r['champion_prediction']}:{r['prediction']}" for r in shadow)
    assert {k: v for k, v in counts.items() if k.startswith(prefix + "c:")} == cells


def window_counts(redis_url: str) -> Counter[str]:
    """Every window's counts of the challenged model, summed."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    summed: Counter[str] = Counter()
    keys = Keys()
    for member in r.zrange(keys.window_index(CHALLENGED), 0, -1):
        version, start = member.rsplit(":", 1)
        counts = r.hgetall(keys.window(CHALLENGED, version, int(start)))
        summed.update({k: int(v) for k, v in counts.items()})
    return summed


@pytest.mark.parametrize("step", ["after_intent", "after_put"])
def test_a_crash_while_writing_shadow_rows_then_redelivery_writes_each_once(
    sqlite_registry: str, challenge: Versions, infer_settings: Settings, s3: Any, step: crash.Step
) -> None:
    ctx = shadowed(sqlite_registry, challenge.weaker, infer_settings)
    assert ctx.shadow is not None
    ctx.shadow.writer.checkpoint = crash.raise_at(step)
    a, b, c = messages(3, 30, seed=12)
    with pytest.raises(crash.Crash):
        handler.handle(batch_event(a, b), ctx)
    # Redelivered in other company: `a` with a message it was not with, `b` alone.
    assert handler.handle(batch_event(c, a), ctx)["batchItemFailures"] == []
    assert handler.handle(batch_event(b), ctx)["batchItemFailures"] == []
    champion = Counter((r["message_id"], r["record_index"]) for r in bucket_rows(s3))
    shadow = Counter((r["message_id"], r["record_index"]) for r in shadow_of(s3))
    assert set(champion.values()) == set(shadow.values()) == {1}
    assert shadow == champion
    assert len(shadow) == 90


def test_a_share_of_the_messages_is_scored_chosen_by_id(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any
) -> None:
    batch = messages(40, 2, seed=13)
    shadowed(sqlite_registry, challenge.weaker, make_settings(SHADOW_SHARE="0.5"), batch)
    scored = {r["message_id"] for r in shadow_of(s3)}
    chosen = {m["messageId"] for m in batch if selected(m["messageId"], 0.5)}
    assert scored == chosen
    assert 10 < len(chosen) < 30
    assert len(bucket_rows(s3)) == 80


@pytest.mark.parametrize(("breakage", "stage", "flavours"), [
    ("gone", "load", "sklearn,lightgbm"),
    # The raising challenger is a pyfunc of its own code: by default it is never loaded (its
    # code never runs); listed on purpose, it loads and raises when it predicts.
    ("raising", "load", "sklearn,lightgbm,onnx"),
    ("raising", "predict", "sklearn,lightgbm,python_function"),
], ids=["gone", "pyfunc-refused", "raising"])  # fmt: skip
def test_a_broken_challenger_leaves_the_champion_alone_and_is_retried_at_the_next_refresh(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, breakage: str,
    stage: str, flavours: str,
) -> None:  # fmt: skip
    set_challenger(sqlite_registry, getattr(challenge, breakage))
    baseline = failures(stage)
    ctx = handler.build_context(make_settings(MODEL_REFRESH_S="30", MODEL_FLAVORS=flavours))
    assert ctx.shadow is not None
    now = [0.0]
    ctx.shadow.challengers.clock = lambda: now[0]  # the refresh interval passes when we say
    for n, batch in enumerate((messages(3, 20, seed=14), messages(3, 20, seed=15, start=10)), 1):
        now[0] += 30  # the next refresh: the broken challenger is tried again
        ctx.shadow.challengers.get(CHALLENGED)
        ctx.shadow.challengers.settle()
        assert handler.handle(batch_event(*batch), ctx)["batchItemFailures"] == []
        assert failures(stage) == baseline + n
    rows = bucket_rows(s3)
    assert len(rows) == 120
    assert getattr(challenge, breakage) not in {r["model_version"] for r in rows}
    assert shadow_of(s3) == []


def test_labels_score_both_versions_on_the_same_rows(
    sqlite_registry: str, challenge: Versions, infer_settings: Settings, s3: Any, redis_url: str
) -> None:
    batch = messages(5, 40, seed=16)
    ctx = shadowed(sqlite_registry, challenge.weaker, infer_settings, batch)
    shadow = shadow_of(s3)
    # Ground truth: the class after the champion's for a third of the rows, so both err.
    labels = [{"message_id": r["message_id"], "record_index": int(r["record_index"]),
               "label": str((int(r["champion_prediction"]) + (i % 3 == 0)) % 3)}
              for i, r in enumerate(shadow)]  # fmt: skip
    counted = asyncio.run(send_labels(redis_url, labels, ctx, infer_settings))
    assert counted == len(labels)
    report = stats.challenger_report(window_counts(redis_url), challenge.weaker, None, 0.2)
    truth = {(x["message_id"], x["record_index"]): x["label"] for x in labels}
    hits = sum(truth[(r["message_id"], int(r["record_index"]))] == r["prediction"] for r in shadow)
    assert report["labelled"] == len(shadow)
    assert report["accuracy"] == round(hits / len(shadow), 4)
    assert report["champion_accuracy"] == round(1 - len(shadow[::3]) / len(shadow), 4)


async def send_labels(
    redis_url: str, labels: list[dict[str, Any]], ctx: handler.InferContext, settings: Settings
) -> int:
    client = AsyncRedis.from_url(redis_url)
    try:
        schema: ModelSchema = ctx.models.get(CHALLENGED).schema
        joined = await feedback.join(client, labels, {CHALLENGED: schema}, settings)
        done = await feedback.count_once(client, settings.keys, joined, settings.RESULT_TTL_S)
        return done.counted
    finally:
        await client.aclose()


def test_shadow_rows_and_their_counts_are_the_same_under_both_runtimes(
    sqlite_registry: str, challenge: Versions, make_settings: Any, s3: Any, redis_url: str
) -> None:
    found = {}
    for setting in ("native", "onnx"):
        settings = make_settings(PREDICT_RUNTIME=setting)
        ctx = shadowed(sqlite_registry, challenge.weaker, settings, messages(4, 30, seed=14))
        assert ctx.shadow is not None
        challenger = ctx.shadow.challengers.get(CHALLENGED)
        assert challenger is not None
        assert (ctx.models.get(CHALLENGED).runtime_name, challenger.runtime_name) == (
            setting, setting,
        )  # fmt: skip
        listed = s3.list_objects_v2(Bucket="predictions", Prefix="shadow/")["Contents"]
        for item in listed:
            metadata = s3.head_object(Bucket="predictions", Key=item["Key"])["Metadata"]
            assert metadata == {RUNTIME_METADATA: setting}
        shadow = [{k: v for k, v in r.items() if k != "predicted_at"} for r in shadow_of(s3)]
        found[setting] = (sorted(shadow, key=lambda r: (r["message_id"], r["record_index"])),
                          window_counts(redis_url))  # fmt: skip
        for item in s3.list_objects_v2(Bucket="predictions").get("Contents", []):
            s3.delete_object(Bucket="predictions", Key=item["Key"])
        redis.Redis.from_url(redis_url).flushdb()
    assert len(found["native"][0]) == 4 * 30
    assert found["onnx"][0] == found["native"][0]
    assert_same_counts(found["onnx"][1], found["native"][1], 4 * 30)
    assert found["native"][1][f"s:{challenge.weaker}:n"] == 4 * 30
