"""The runtime that serves each version: chosen by PREDICT_RUNTIME and the version's parity
report, giving the native model's answers, and named on the objects its rows are in."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pytest
import redis

from streamfn.core.keys import Keys
from streamfn.core.settings import SEED_MODELS, Settings
from streamfn.infer import handler
from streamfn.models.cache import ModelCache
from streamfn.models.loaded import columns_of, frame_of
from streamfn.models.registry import open_registry
from streamfn.models.runtimes.choice import AUTO, PARITY_FILE, choose
from streamfn.models.runtimes.onnx import CHUNK_ROWS
from streamfn.models.schemas import seed_schema
from streamfn.sink.rows import RUNTIME_METADATA
from tests.conftest import bucket_rows
from tests.factories import assert_same_counts, batch_event, estimated_cell, sqs_record
from tests.models.test_cache import partial_records
from tests.shadowed import sampled_records

pytestmark = pytest.mark.slow

SEED = seed_schema()
T0 = 1_796_100_000_000  # epoch ms of the first message
WINDOW_S = 60


def reports(uri: str) -> dict[str, dict[str, Any]]:
    """The parity report of each seed model's champion."""
    registry = open_registry(uri)
    found = {}
    for api_name, name in SEED_MODELS.items():
        version = registry.alias_version(name, "champion").version
        found[api_name] = registry.json_file(name, version, PARITY_FILE)
    return found


def test_auto_serves_each_version_as_its_parity_report_says(
    sqlite_registry: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamfn.models.loading")
    cache = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS)
    for api_name, report in reports(sqlite_registry).items():
        model = cache.get(api_name)
        expected = choose(AUTO, report)
        assert model.choice == expected
        assert model.runtime_name == expected.runtime
        # The seed's graphs are exact; auto then follows the timings, whichever way they went.
        assert report["passed"]
        faster = all(t["onnx"] < t["native"] for t in report["timings_ms"].values())
        assert model.runtime_name == ("onnx" if faster else "native")
        assert model.estimator is not None  # the native model stays at hand (explanations)
    lines = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert {(r.model, r.runtime) for r in lines} == {  # type: ignore[attr-defined]
        (api_name, cache.get(api_name).runtime_name) for api_name in SEED_MODELS
    }
    assert all(r.runtime_reason for r in lines)  # type: ignore[attr-defined]


@pytest.mark.parametrize("setting", ["native", "onnx"])
def test_predict_runtime_forces_the_runtime_of_every_version(
    sqlite_registry: str, setting: str
) -> None:
    cache = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS, runtime=setting)
    for api_name in SEED_MODELS:
        model = cache.get(api_name)
        assert model.runtime_name == setting
        assert model.choice.reason.startswith(f"PREDICT_RUNTIME={setting}")


def test_both_runtimes_give_the_same_classes_and_probabilities(sqlite_registry: str) -> None:
    native = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS, runtime="native")
    onnx = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS, runtime="onnx")
    records = [*partial_records(300), *sampled_records(300, seed=5), {}]
    columns = columns_of(SEED, records)
    for api_name in SEED_MODELS:
        ours, theirs = native.get(api_name), onnx.get(api_name)
        assert (ours.runtime_name, theirs.runtime_name) == ("native", "onnx")
        assert theirs.predict(columns) == ours.predict(columns), api_name
        # A frame is columns too (a backtest passes the frame of the rows it read).
        assert theirs.predict(frame_of(SEED, records)) == ours.predict(columns), api_name
        if ours.has_probabilities:
            assert np.abs(theirs.probabilities(columns) - ours.probabilities(columns)).max() < 1e-5
    assert onnx.get("svm").predict(columns_of(SEED, [])) == []


def handled(settings: Settings, events: list[dict[str, Any]]) -> handler.InferContext:
    """An infer context of these settings with every event handled, none failing."""
    ctx = handler.build_context(settings)
    for event in events:
        assert handler.handle(event, ctx) == {"batchItemFailures": []}
    return ctx


def window_counts(redis_url: str) -> dict[str, Counter[str]]:
    """Every model's window counts (all versions and windows summed)."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    keys, summed = Keys(), {}
    for model in SEED_MODELS:
        summed[model] = Counter()
        for member in r.zrange(keys.window_index(model), 0, -1):
            version, start = member.rsplit(":", 1)
            fields = r.hgetall(keys.window(model, version, int(start)))
            summed[model].update({k: int(v) for k, v in fields.items()})
    return summed


def emptied(s3: Any, redis_url: str) -> None:
    """An empty bucket and Redis: the next run starts where this one did."""
    for item in s3.list_objects_v2(Bucket="predictions").get("Contents", []):
        s3.delete_object(Bucket="predictions", Key=item["Key"])
    redis.Redis.from_url(redis_url).flushdb()


def test_rows_carry_their_runtime_and_are_the_same_rows_and_counts_under_both(
    make_settings: Any, s3: Any, redis_url: str
) -> None:
    records = sampled_records(120, seed=21)
    events = [
        batch_event(*(sqs_record(f"{T0 + 10 * i + j}-0", model, records[i * 40 : (i + 1) * 40])
                      for j, model in enumerate(SEED_MODELS)))
        for i in range(3)
    ]  # fmt: skip
    found: dict[str, tuple[list[dict[str, str]], dict[str, Counter[str]]]] = {}
    for setting in ("native", "onnx"):
        settings = make_settings(PREDICT_RUNTIME=setting, MONITOR_WINDOW_S=WINDOW_S)
        handled(settings, events)
        listed = s3.list_objects_v2(Bucket="predictions", Prefix="predictions/")["Contents"]
        keys = [o["Key"] for o in listed]
        assert len(keys) == 9  # three models in three batches
        for key in keys:
            metadata = s3.head_object(Bucket="predictions", Key=key)["Metadata"]
            assert metadata == {RUNTIME_METADATA: setting}, key
        rows = [{k: v for k, v in r.items() if k != "predicted_at"} for r in bucket_rows(s3)]
        found[setting] = (sorted(rows, key=lambda r: (r["message_id"], r["record_index"])),
                          window_counts(redis_url))  # fmt: skip
        emptied(s3, redis_url)
    (native_rows, native_counts), (onnx_rows, onnx_counts) = found["native"], found["onnx"]
    assert len(native_rows) == 3 * 120
    assert onnx_rows == native_rows
    for model, counts in native_counts.items():
        assert any(estimated_cell(k) for k in counts), model  # every seed version is calibrated
        assert_same_counts(onnx_counts[model], counts, 120)
    assert all(counts["records"] == 120 for counts in native_counts.values())


def test_a_run_of_records_without_numbers_is_never_a_chunk_of_its_own(
    sqlite_registry: str,
) -> None:
    # scikit-learn's IterativeImputer imputes a batch whose every number is missing otherwise
    # (its initial fill only): a chunk made of such rows alone would differ from native.
    native = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS, runtime="native")
    onnx = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS, runtime="onnx")
    numbers = {c.name for c in SEED.columns if c.kind == "number"}
    sampled = sampled_records(CHUNK_ROWS + 44, seed=8)
    records = [
        *sampled[:CHUNK_ROWS],
        *({k: v for k, v in r.items() if k not in numbers} for r in sampled[CHUNK_ROWS:]),
    ]
    columns = columns_of(SEED, records)
    graph = onnx.get("lightgbm")
    assert graph.runtime.chunks(columns, len(records)) == [(0, len(records))]
    assert graph.runtime.chunks(columns_of(SEED, sampled), len(sampled)) == [
        (0, CHUNK_ROWS), (CHUNK_ROWS, len(sampled)),
    ]  # fmt: skip
    for api_name in ("lightgbm", "knn"):
        ours, theirs = native.get(api_name), onnx.get(api_name)
        assert theirs.predict(columns) == ours.predict(columns)
        assert np.abs(theirs.probabilities(columns) - ours.probabilities(columns)).max() < 1e-5
