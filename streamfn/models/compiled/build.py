"""A fitted model's compiled form and its parity report: `model.onnx` and `parity.json`.

The report (format 1) holds what `streamfn.models.runtimes.choice` decides by and what a reader
wants to see:
  format, model, compiled_at, versions (of the converters and runtimes), onnx_threads,
  sample (records, missing values per input, counts per category), converted, error,
  rows, classes_identical (null for a regressor), classes_differ_at, max_abs_diff, compared
  (probabilities, decision_function or prediction), tolerance, passed, note,
  timings_ms {"1"|"100"|"1000": {"native": ms, "onnx": ms}} (when parity passed),
  graph (bytes, nodes, opsets).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import onnx

from streamfn.models.compiled import parity, sample
from streamfn.models.compiled.convert import ConversionError, to_onnx
from streamfn.models.runtimes.choice import REPORT_FORMAT
from streamfn.models.runtimes.native import NativeRuntime
from streamfn.models.runtimes.onnx import THREADS, FeedError, GraphError, OnnxRuntime
from streamfn.models.schemas import ModelSchema

PACKAGES = ("onnx", "onnxruntime", "skl2onnx", "onnxmltools", "scikit-learn", "lightgbm", "numpy")


@dataclass(frozen=True)
class Compiled:
    """A model's graph (None when it could not be converted) and its parity report."""

    graph: bytes | None
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        """Whether the graph gives the model's answers."""
        return bool(self.report.get("passed"))


def versions() -> dict[str, str]:
    """The versions of what wrote and checked the graph (the converters read private attributes:
    a report made with other versions says so)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def compile_model(
    estimator: Any, schema: ModelSchema, records: Sequence[Mapping[str, Any]]
) -> Compiled:
    """Convert the fitted model, check the graph on `records` plus edge records, time both."""
    everything = [*records, *sample.edge_records(schema, records)]
    head = _head(schema, everything)
    try:
        graph = to_onnx(estimator, schema)
    except ConversionError as error:
        return Compiled(None, {**head, "converted": False, "passed": False, "error": str(error)})
    return check_graph(estimator, schema, graph, everything, head)


def check_graph(
    estimator: Any, schema: ModelSchema, graph: bytes, records: Sequence[Mapping[str, Any]],
    head: dict[str, Any] | None = None,
) -> Compiled:  # fmt: skip
    """The report of a graph said to be the estimator's, checked on exactly these records."""
    head = head or _head(schema, records)
    try:
        runtime = OnnxRuntime(graph, schema)
    except (GraphError, FeedError) as error:
        return Compiled(None, {**head, "converted": False, "passed": False, "error": str(error)})
    try:
        found = parity.check(estimator, schema, runtime, records)
    except Exception as error:  # either form failing on records the schema allows
        failed = f"the check failed on the sample: {type(error).__name__}: {error}"
        return Compiled(None, {**head, "converted": True, "passed": False, "error": failed})
    report = {**head, "converted": True, "error": None, **dataclasses.asdict(found),
              "tolerance": parity.TOLERANCE, "graph": graph_summary(graph)}  # fmt: skip
    if found.passed:  # the timings decide between two forms that give the same answers
        native = NativeRuntime(schema, None, estimator)
        report["timings_ms"] = parity.timings(native, runtime, schema, records)
    return Compiled(graph, report)


def _head(schema: ModelSchema, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "model": schema.registered_name,
        "compiled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "onnx_threads": THREADS,
        "sample": sample.summary(schema, records),
    }


def graph_summary(graph: bytes) -> dict[str, Any]:
    """Size, node count and opsets of a serialized graph."""
    model = onnx.load_from_string(graph)
    return {
        "bytes": len(graph),
        "nodes": len(model.graph.node),
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
    }
