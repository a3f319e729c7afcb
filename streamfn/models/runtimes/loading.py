"""The runtime of a downloaded version: the one `choice` names, built; native when its graph
cannot be opened or fed (the reason then says so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from mlflow.pyfunc import PyFuncModel

from streamfn.models.runtimes.base import Runtime
from streamfn.models.runtimes.choice import NATIVE, ONNX_FILE, PARITY_FILE, Choice, choose
from streamfn.models.runtimes.native import NativeRuntime
from streamfn.models.schemas import ModelSchema


def graph_file(path: Path, model: PyFuncModel, onnx_model: bool) -> Path:
    """Where a version's graph is: an ONNX model's own file, else the compiled one."""
    if onnx_model:
        return path / str(model.metadata.flavors["onnx"].get("data", "model.onnx"))
    return path / ONNX_FILE


def report_in(path: Path) -> dict[str, Any] | None:
    """The version's parity report, None when it has none (or an unreadable one)."""
    found = path / PARITY_FILE
    if not found.exists():
        return None
    try:
        report = orjson.loads(found.read_bytes())
    except orjson.JSONDecodeError:
        return {"format": None}  # refused by choose(), with the reason "compile again"
    return report if isinstance(report, dict) else {"format": None}


def runtime_of(
    setting: str, path: Path, schema: ModelSchema, model: PyFuncModel, estimator: Any
) -> tuple[Runtime, Choice]:
    """The runtime that serves a version downloaded at `path`, and why."""
    onnx_model = estimator is None and "onnx" in model.metadata.flavors
    choice = choose(setting, None if onnx_model else report_in(path), onnx_model)
    native = NativeRuntime(schema, model, estimator)
    if choice.runtime == NATIVE:
        return native, choice
    try:
        # Imported here: a process that never serves a graph never loads ONNX Runtime.
        from streamfn.models.runtimes import onnx
    except ImportError as error:
        return native, Choice(NATIVE, f"{choice.reason}; but onnxruntime is missing: {error}",
                              refused=True)  # fmt: skip
    try:
        return onnx.OnnxRuntime(graph_file(path, model, onnx_model).read_bytes(), schema), choice
    except (OSError, onnx.GraphError, onnx.FeedError) as error:
        reason = f"{choice.reason}; but its graph cannot serve: {type(error).__name__}: {error}"
        return native, Choice(NATIVE, reason, refused=True)
