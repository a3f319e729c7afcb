"""Compiled inference in the bench: per model, the runtime auto chose and why, the parity figures
of its report, and the in-process floor of one record (inputs + predict + CSV) under each
runtime, side by side in one run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamfn.core.settings import SEED_MODELS
from streamfn.models.registry import open_registry
from streamfn.models.runtimes.choice import PARITY_FILE

if TYPE_CHECKING:
    from streamfn.models.loaded import LoadedModel

ONE = 1  # records per call of the side-by-side floor: where per-call overhead is everything


@dataclass(frozen=True)
class Compiled:
    """One model's compiled form as the bench found it."""

    model: str
    version: str
    runtime: str  # what auto serves
    reason: str
    rows: int
    classes_identical: int | None  # None: a regressor, or never checked
    max_abs_diff: float | None
    native_p50_ms: float
    onnx_p50_ms: float | None  # None: no graph that may serve


def uncompiled(registry: str, models: Sequence[str], alias: str = "champion") -> list[str]:
    """The models whose served version has no parity report (logged before compiling was)."""
    found = open_registry(registry)
    missing = []
    for model in models:
        version = found.alias_version(SEED_MODELS[model], alias).version
        if found.file(SEED_MODELS[model], version, PARITY_FILE) is None:
            missing.append(model)
    return missing


def compile_missing(registry: str, models: Sequence[str], say: Callable[[str], None]) -> None:
    """Compile the served versions that predate compiled inference (a registry kept from an
    older run), so that the bench measures what `streamfn train` makes today."""
    from streamfn.data.compiling import compile_registered, version_of

    for model in uncompiled(registry, models):
        name = SEED_MODELS[model]
        version = version_of(registry, name, None, "champion")
        say(f"compiling {model} v{version} (logged before compiled inference) …")
        compile_registered(registry, model, name, version)


def measure(
    registry: str, models: Sequence[str], records: list[dict[str, Any]], seconds: float
) -> list[Compiled]:
    """For each model: auto's choice, its parity figures, and one record's floor p50 natively
    and under ONNX Runtime (when the report lets the graph serve at all)."""
    from streamfn.models.cache import ModelCache

    caches = {runtime: ModelCache(registry, "champion", 3600, SEED_MODELS, runtime=runtime)
              for runtime in ("auto", "native", "onnx")}  # fmt: skip
    found = []
    for model in models:
        served = caches["auto"].get(model)
        report = open_registry(registry).json_file(SEED_MODELS[model], served.version, PARITY_FILE)
        graph = caches["onnx"].get(model)
        loaded = {"native": caches["native"].get(model)}
        if graph.runtime_name == "onnx":  # else no graph may serve: nothing to set beside native
            loaded["onnx"] = graph
        best = best_p50(loaded, records[:ONE], seconds)
        report = report or {}
        found.append(Compiled(
            model, served.version, served.runtime_name, served.choice.reason,
            report.get("rows", 0), report.get("classes_identical"), report.get("max_abs_diff"),
            best["native"], best.get("onnx"),
        ))  # fmt: skip
    return found


def best_p50(
    loaded: dict[str, LoadedModel], records: list[dict[str, Any]], seconds: float, rounds: int = 2
) -> dict[str, float]:
    """Each runtime's floor p50 for these records, the best of `rounds` alternated runs (the
    machine's drift then favours neither)."""
    from streamfn.bench import floor  # the infer function's code: imported when measuring

    best = dict.fromkeys(loaded, float("inf"))
    for _ in range(rounds):
        for runtime, model in loaded.items():
            best[runtime] = min(best[runtime], floor.measure(model, records, seconds).p50_ms)
    return best


def table(found: Sequence[Compiled], ratios: bool = True) -> list[str]:
    """Markdown rows: the choice, the parity figures, the one-record floor of each runtime."""
    header = ("| model | version | auto serves | classes identical | max difference | "
              "floor p50, 1 record, native ms | ONNX Runtime ms |")  # fmt: skip
    lines = [header + (" native ÷ ONNX |" if ratios else ""),
             "|---|---:|---|---:|---:|---:|---:|" + ("---:|" if ratios else "")]  # fmt: skip
    for c in found:
        same = "—" if c.classes_identical is None else f"{c.classes_identical:,} of {c.rows:,}"
        diff = "—" if c.max_abs_diff is None else f"{c.max_abs_diff:.1e}"
        onnx = "—" if c.onnx_p50_ms is None else f"{c.onnx_p50_ms:.3f}"
        row = (f"| {c.model} | {c.version} | {c.runtime} | {same} | {diff} | "
               f"{c.native_p50_ms:.3f} | {onnx} |")  # fmt: skip
        if ratios and c.onnx_p50_ms is not None:
            row += f" {c.native_p50_ms / c.onnx_p50_ms:.1f} x |"
        elif ratios:
            row += " — |"
        lines.append(row)
    lines += ["", *(f"- {c.model}: {c.reason}." for c in found)]
    return lines
