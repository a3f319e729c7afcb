"""Constants and nodes added to a skl2onnx container under unique names: what each converter
writes its graph with."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto
from skl2onnx.common._container import ModelComponentContainer
from skl2onnx.common._topology import Scope

_ELEMENT_TYPES = {
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def element_type(dtype: np.dtype[Any] | type) -> int:
    """The ONNX element type of a numpy dtype."""
    return _ELEMENT_TYPES[np.dtype(dtype)]


class Graph:
    """Adds initializers and nodes to one converter's part of the graph.

    Floating constants take the graph's dtype (double or float), integers become int64, booleans
    stay booleans. Constants go in as initializers, never as float attributes: ONNX float
    attributes are float32, which moved SVC decision values by 8e-8 when gamma was one.
    """

    def __init__(self, scope: Scope, container: ModelComponentContainer, dtype: type) -> None:
        self.scope, self.container, self.dtype = scope, container, dtype

    @property
    def proto(self) -> int:
        """The ONNX element type of the graph's floating values."""
        return element_type(self.dtype)

    def const(self, name: str, value: Any) -> str:
        """An initializer holding `value`."""
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(self.dtype)
        elif np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.int64)
        unique = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(
            unique, element_type(array.dtype), list(array.shape), array.ravel().tolist()
        )
        return unique

    def node(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        """A node with one output (named `out` when given)."""
        name = out or self.scope.get_unique_variable_name(op_type.lower())
        self.container.add_node(
            op_type, inputs, [name], name=self.scope.get_unique_operator_name(op_type), **attrs
        )
        return name

    def nodes(self, op_type: str, inputs: list[str], count: int, **attrs: Any) -> list[str]:
        """A node with `count` outputs."""
        outs = [self.scope.get_unique_variable_name(op_type.lower()) for _ in range(count)]
        self.container.add_node(
            op_type, inputs, outs, name=self.scope.get_unique_operator_name(op_type), **attrs
        )
        return outs
