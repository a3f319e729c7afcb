"""Native against ONNX Runtime on the same records: the same answers, and which is faster.

Parity: the estimator on the frame the native runtime builds, the graph on the feed the ONNX
runtime builds, both from the same records, so the check covers the serving path's input build
too. Classes must be identical on every row; the scores (probabilities, or a classifier's
decision values when it has no probabilities) and a regressor's outputs within TOLERANCE.

Timings: records to predictions, as each runtime serves (the columns built, then one run), at
1, 100 and 1,000 records, best of several; native and ONNX alternate, so that a machine whose
load drifts meanwhile favours neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier

from streamfn.models.columns import column_arrays
from streamfn.models.runtimes.base import Runtime
from streamfn.models.runtimes.onnx import OnnxRuntime
from streamfn.models.schemas import ModelSchema

TOLERANCE = 1e-5
SIZES = (1, 100, 1000)
REPEATS = 5
SHOWN = 20  # rows whose classes differ, listed in the report


@dataclass(frozen=True)
class Parity:
    """What the check found (the report's keys)."""

    rows: int
    classes_identical: int | None  # None for a regressor
    max_abs_diff: float
    compared: str  # probabilities, decision_function or prediction
    passed: bool
    classes_differ_at: list[int] = field(default_factory=list)
    note: str = ""


def native_scores(estimator: Any, frame: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """What the graph's second output mirrors, and its name: predict_proba, else
    decision_function; none for a regressor."""
    if not is_classifier(estimator):
        return None, "prediction"
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(frame), dtype=np.float64), "probabilities"
    return np.asarray(estimator.decision_function(frame), dtype=np.float64), "decision_function"


def check(
    estimator: Any, schema: ModelSchema, graph: OnnxRuntime, records: Sequence[Mapping[str, Any]]
) -> Parity:
    """Both forms on every record."""
    columns = column_arrays([(c.name, c.kind) for c in schema.columns], records)
    frame = pd.DataFrame(columns, columns=list(schema.names))
    native = np.asarray(estimator.predict(frame)).ravel()
    scores, compared = native_scores(estimator, frame)
    found = graph.run(columns, probabilities=scores is not None)
    if scores is None:  # a regressor: its outputs are what must agree
        diff = _max_diff(found.values.astype(np.float64), native.astype(np.float64))
        return Parity(len(native), None, diff, compared, diff <= TOLERANCE)
    if found.probabilities is None or found.probabilities.shape != scores.shape:
        shape = None if found.probabilities is None else found.probabilities.shape
        note = f"the graph's scores are {shape}, native {compared} {scores.shape}"
        return Parity(len(native), 0, float("inf"), compared, False, note=note)
    same = _as_text(found.values) == _as_text(native)
    diff = _max_diff(found.probabilities, scores)
    differ_at = np.flatnonzero(~same)[:SHOWN].tolist()
    passed = bool(same.all()) and diff <= TOLERANCE
    return Parity(len(native), int(same.sum()), diff, compared, passed, differ_at)


def _max_diff(found: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference (inf when either side has a NaN the other lacks)."""
    if found.shape != expected.shape:
        return float("inf")
    if not found.size:
        return 0.0
    apart = np.abs(found - expected)
    both_nan = np.isnan(found) & np.isnan(expected)
    return float(np.where(both_nan, 0.0, np.nan_to_num(apart, nan=np.inf)).max())


def _as_text(values: np.ndarray) -> np.ndarray:
    """Classes compared as text: an int64 label equals the native int, a string the string."""
    return np.asarray([str(v) for v in values.tolist()], dtype=object)


def best_ms(call: Callable[[], object], number: int) -> float:
    """One timing: the mean of `number` calls, in milliseconds."""
    started = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - started) / number * 1e3


def timings(
    native: Runtime, graph: Runtime, schema: ModelSchema, records: Sequence[Mapping[str, Any]],
    sizes: Sequence[int] = SIZES, repeats: int = REPEATS,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """ms per call, best of `repeats`, per size: {"1": {"native": …, "onnx": …}, …}. Small
    calls average several per timing (a call of one record is 0.1 to 20 ms)."""
    names_and_kinds = [(c.name, c.kind) for c in schema.columns]
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        batch = [records[i % len(records)] for i in range(size)]
        calls = {
            runtime.name: lambda r=runtime, b=batch: r.run(column_arrays(names_and_kinds, b), False)
            for runtime in (native, graph)
        }
        number = max(1, 50 // size)
        best = dict.fromkeys(calls, float("inf"))
        for call in calls.values():
            call()  # warm: first-call allocations, lazy imports
        for _ in range(repeats):
            for name, call in calls.items():
                best[name] = min(best[name], best_ms(call, number))
        out[str(size)] = {name: round(ms, 4) for name, ms in best.items()}
    return out
