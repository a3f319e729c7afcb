"""LGBMClassifier through onnxmltools' converter, with thresholds and leaf values kept in double
when the graph is double."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from skl2onnx.common._container import ModelComponentContainer
from skl2onnx.common._topology import Operator, Scope
from skl2onnx.common.data_types import DoubleTensorType

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
# TreeEnsemble* attributes that have a double `*_as_tensor` twin in ai.onnx.ml opset 3.
DOUBLE_TWINS = ("nodes_values", "class_weights", "target_weights", "base_values")


def lightgbm_convert(scope: Scope, operator: Operator, container: ModelComponentContainer) -> None:
    """onnxmltools' LGBMClassifier converter; in a double graph, its trees keep double values.

    onnxmltools writes `nodes_values` as FLOATS: LightGBM's double thresholds rounded to
    float32, so a feature lying between float32(t) and t takes the other branch (a probe of
    thresholds' next doubles flipped 15 of 1,000 classes). ai.onnx.ml 3's `*_as_tensor` twins
    hold doubles, which onnxruntime compares in double; this wrapper moves the values there as
    the node is added. The op's Z output stays float32 whatever the thresholds (hence parity
    of about 1e-7, not 1e-16), so the final Identity to the declared double probabilities becomes
    a Cast.
    """
    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        convert_lightgbm(scope, operator, container)
        return
    add_node = container.add_node
    probabilities = operator.outputs[1].full_name

    def in_double(
        op_type: str, inputs: Any, outputs: Any, op_domain: str = "", **attrs: Any
    ) -> Any:
        if op_type in TREE_OPS:
            for key in DOUBLE_TWINS:
                if key in attrs:
                    values = np.asarray(attrs.pop(key), dtype=np.float64)
                    attrs[f"{key}_as_tensor"] = numpy_helper.from_array(values, f"{key}_as_tensor")
            attrs["op_version"] = 3
        elif op_type == "Identity" and outputs in (probabilities, [probabilities]):
            return add_node(
                "Cast", inputs, outputs, to=TensorProto.DOUBLE,
                name=scope.get_unique_operator_name("CastProbabilities"),
            )  # fmt: skip
        return add_node(op_type, inputs, outputs, op_domain=op_domain, **attrs)

    container.add_node = in_double  # type: ignore[method-assign]
    try:
        convert_lightgbm(scope, operator, container)
    finally:
        del container.add_node  # back to the class's method
