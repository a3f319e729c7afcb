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
