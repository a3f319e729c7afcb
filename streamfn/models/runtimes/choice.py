"""Which runtime serves a version, and why: PREDICT_RUNTIME and the version's parity report.

- `native`: the version's own model, always.
- `onnx`: the compiled graph wherever it passed parity, whatever the timings; a version without
  one, or whose graph failed parity, is served natively (a graph known to be wrong never serves).
- `auto` (the default): the compiled graph when it passed parity and was faster than native at
  every size the report timed (1, 100 and 1,000 records); otherwise native.
A version that is itself an ONNX model (MLflow's onnx flavour) is served by ONNX Runtime directly,
unless PREDICT_RUNTIME=native sends it through MLflow's pyfunc.

Pure Python (no numpy): GET /models asks it in the ingest function with the same inputs the
infer function has, so both say the same. The infer function may still fall back to native when
a graph cannot be opened; that is in its log line only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

AUTO = "auto"
NATIVE = "native"
ONNX = "onnx"
ONNX_FILE = "model.onnx"  # a compiled version's graph, beside its MLmodel
PARITY_FILE = "parity.json"  # the report that lets it serve
REPORT_FORMAT = 1


@dataclass(frozen=True)
class Choice:
    """The runtime that serves a version and why; `refused` when a compiled graph exists but
    must not serve (failed parity, or could not be converted or opened): worth a warning."""

    runtime: str
    reason: str
    refused: bool = False

    def to_json(self) -> dict[str, Any]:
        """As GET /models gives it."""
        return {"name": self.runtime, "reason": self.reason}


def is_onnx_model(mlmodel: str | None) -> bool:
    """Whether an MLmodel file is an ONNX model's (MLflow's onnx flavour, no sklearn one)."""
    flavors = ((yaml.safe_load(mlmodel or "") or {}).get("flavors")) or {}
    return "onnx" in flavors and "sklearn" not in flavors


def choose(setting: str, report: Mapping[str, Any] | None, onnx_model: bool = False) -> Choice:
    """The runtime for PREDICT_RUNTIME `setting`, given the version's parity report (None when
    it was never compiled) and whether the version is itself an ONNX model."""
    if onnx_model:
        if setting == NATIVE:
            return Choice(NATIVE, "PREDICT_RUNTIME=native: the ONNX model through MLflow's pyfunc")
        return Choice(ONNX, "the version is an ONNX model: ONNX Runtime serves it directly")
    if setting == NATIVE:
        return Choice(NATIVE, "PREDICT_RUNTIME=native")
    refusal = _refusal(report)
    if refusal is not None:
        return refusal
    assert report is not None  # _refusal answered for a missing report
    if setting == ONNX:
        return Choice(ONNX, f"PREDICT_RUNTIME=onnx, and the graph passed parity ({parity(report)})")
    slower = [(int(size), t["onnx"], t["native"]) for size, t in timings(report)
              if t["onnx"] >= t["native"]]  # fmt: skip
    if slower:
        size, onnx_ms, native_ms = slower[0]
        return Choice(NATIVE, f"the graph passed parity but is not faster at {size:,} records "
                              f"({onnx_ms:.3g} ms against {native_ms:.3g} ms native)")  # fmt: skip
    speed = ", ".join(f"{t['native'] / t['onnx']:.1f}x at {int(size):,}"
                      for size, t in timings(report))  # fmt: skip
    return Choice(ONNX, f"passed parity ({parity(report)}) and faster ({speed})")


def _refusal(report: Mapping[str, Any] | None) -> Choice | None:
    """Native, and why, when the report does not let the graph serve at all."""
    if report is None:
        return Choice(NATIVE, f"not compiled (no {PARITY_FILE}: run `streamfn compile`)")
    if report.get("format") != REPORT_FORMAT:
        return Choice(NATIVE, f"{PARITY_FILE} of format {report.get('format')!r}: compile again",
                      refused=True)  # fmt: skip
    if not report.get("converted"):
        return Choice(NATIVE, f"no ONNX form: {report.get('error')}", refused=True)
    if not report.get("passed"):
        return Choice(NATIVE, f"the graph failed parity ({parity(report)})", refused=True)
    if not timings(report):
        return Choice(NATIVE, f"{PARITY_FILE} has no timings: compile again", refused=True)
    return None


def parity(report: Mapping[str, Any]) -> str:
    """The parity figures in a few words: classes identical and the largest difference."""
    rows = report.get("rows", 0)
    diff = f"max difference {report.get('max_abs_diff', float('nan')):.1e}"
    tolerance = f"tolerance {report.get('tolerance', float('nan')):.0e}"
    same = report.get("classes_identical")
    if same is None:  # a regressor: its outputs only
        return f"{rows:,} rows, {diff}, {tolerance}"
    return f"{same:,} of {rows:,} classes identical, {diff}, {tolerance}"


def timings(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, float]]]:
    """(records, {"native": ms, "onnx": ms}) per size timed, smallest first."""
    found = report.get("timings_ms") or {}
    return sorted(found.items(), key=lambda item: int(item[0]))
