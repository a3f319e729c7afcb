"""The floor the benchmark measures is the infer function's own work, and it is measured."""

from __future__ import annotations

import csv
import io

import pytest

from streamfn.bench import floor
from streamfn.core.settings import SEED_MODELS
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.models.cache import ModelCache

pytestmark = pytest.mark.slow


def test_one_batch_is_the_rows_the_infer_function_writes(sqlite_registry: str) -> None:
    model = ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS).get("lightgbm")
    records = RecordSampler(load_profile(), seed=3).records(100)
    rows = list(csv.DictReader(io.StringIO(floor.one_batch(model, records).decode())))
    assert len(rows) == 100
    assert {r["prediction_label"] for r in rows} <= {"Low", "Medium", "High"}
    measured = floor.measure(model, records, seconds=0.2)
    assert measured.records_per_s > 0
    assert 0 < measured.p50_ms <= measured.p99_ms


def test_the_bench_reports_auto_s_choice_the_parity_figures_and_both_floors(
    sqlite_registry: str,
) -> None:
    from streamfn.bench import compiled
    from streamfn.models.registry import open_registry
    from streamfn.models.runtimes.choice import AUTO, PARITY_FILE, choose

    assert compiled.uncompiled(sqlite_registry, list(SEED_MODELS)) == []  # train compiled them
    records = RecordSampler(load_profile(), seed=3).records(1)
    [found] = compiled.measure(sqlite_registry, ["lightgbm"], records, seconds=0.2)
    report = open_registry(sqlite_registry).json_file(SEED_MODELS["lightgbm"], "1", PARITY_FILE)
    assert (found.model, found.version) == ("lightgbm", "1")
    assert (found.runtime, found.reason) == (choose(AUTO, report).runtime,
                                             choose(AUTO, report).reason)  # fmt: skip
    assert (found.rows, found.classes_identical, found.max_abs_diff) == (
        report["rows"], report["classes_identical"], report["max_abs_diff"],
    )  # fmt: skip
    assert found.native_p50_ms > 0
    assert found.onnx_p50_ms is not None
    assert found.onnx_p50_ms > 0
