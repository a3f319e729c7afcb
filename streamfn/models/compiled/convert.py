"""A fitted scikit-learn model (a whole pipeline: preprocessing and estimator) as one ONNX graph.

The graph takes one [N, 1] input per signature column under the column's own name ("Company
Type", not skl2onnx's "Company_Type"), numbers as double, strings as strings, so the serving
side feeds the batch's column arrays as they are. Double, not float: float32 thresholds flip
LightGBM classes on boundary values and float32 SVC decision values sit within rounding of a
vote (docs/models.md, "Compiled inference").

Outputs: the prediction first (`label` for a classifier, `variable` for a regressor), then for a
classifier its scores: `predict_proba`'s probabilities, or `decision_function` for a classifier
without probabilities (the seed's SVC). The graph says which in its metadata (SCORES_KEY).
"""

from __future__ import annotations

from typing import Any

import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from streamfn.models.columns import NUMERIC_KINDS
from streamfn.models.compiled.converters.registry import register
from streamfn.models.schemas import ModelSchema

# The main domain at 21 (skl2onnx 1.20 is tested up to 22; onnxruntime runs 21 from 1.18);
# ai.onnx.ml at 3, for the trees' double `*_as_tensor` attributes.
TARGET_OPSET: dict[str, int] = {"": 21, "ai.onnx.ml": 3}
SCORES_KEY = "streamfn.scores"  # metadata: probabilities, decision_function or none


class ConversionError(RuntimeError):
    """The model cannot be written as ONNX (an estimator or option no converter handles)."""


def final_estimator(model: Any) -> Any:
    """The last step of a pipeline, or the model itself."""
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def scores_of(model: Any) -> str:
    """What a classifier's second output holds: probabilities, else decision_function; a
    regressor has none."""
    if not is_classifier(model):
        return "none"
    return "probabilities" if hasattr(model, "predict_proba") else "decision_function"


def to_onnx(model: Any, schema: ModelSchema) -> bytes:
    """The serialized graph of a fitted model whose inputs are the schema's columns."""
    register()
    initial_types = []
    for column in schema.columns:
        if column.kind == "boolean":
            raise ConversionError(f"input {column.name!r} is boolean: no ONNX input is made for it")
        kind = DoubleTensorType if column.kind in NUMERIC_KINDS else StringTensorType
        initial_types.append((column.name, kind([None, 1])))
    options = {}
    if is_classifier(final_estimator(model)):
        options = {id(final_estimator(model)): {"zipmap": False}}
    try:
        graph = convert_sklearn(model, initial_types=initial_types, target_opset=TARGET_OPSET,
                                options=options)  # fmt: skip
    except Exception as error:  # skl2onnx raises anything from RuntimeError to KeyError
        raise ConversionError(f"{type(error).__name__}: {error}") from error
    _rename_inputs(graph, [name for name, _ in initial_types])
    onnx.helper.set_model_props(graph, {SCORES_KEY: scores_of(model)})
    return graph.SerializeToString()


def _rename_inputs(graph: onnx.ModelProto, names: list[str]) -> None:
    """Give the graph's inputs back the column names skl2onnx made identifiers of ("Company
    Type" became "Company_Type"): ONNX names are any strings, only skl2onnx's naming insists on
    identifiers. skl2onnx keeps the declared inputs, in their order."""
    inputs = graph.graph.input
    if len(inputs) != len(names):
        raise ConversionError(f"the graph has {len(inputs)} inputs for {len(names)} columns")
    renamed = {i.name: new for i, new in zip(inputs, names, strict=True) if i.name != new}
    if not renamed:
        return
    used = {v for n in graph.graph.node for v in (*n.input, *n.output)}
    used |= {i.name for i in graph.graph.initializer}
    clash = set(renamed.values()) & (used - set(renamed))
    if clash:
        raise ConversionError(f"column names already used inside the graph: {sorted(clash)}")
    for value in inputs:
        value.name = renamed.get(value.name, value.name)
    for node in graph.graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]
