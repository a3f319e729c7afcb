"""The ONNX runtime: ONNX Runtime on a graph, fed the batch's column arrays (no DataFrame).

Two kinds of graph are fed:
- one input per signature column, under the column's own name (what `streamfn compile` writes,
  and what a user's graph may declare): each column reshaped to the input's rank and type;
- a user's graph with one numeric input whose width is the number of columns, every column a
  number: the columns stacked in signature order.
Anything else cannot be fed from the signature (FeedError), and the version is served natively.

A string column's missing value becomes "" (an ONNX string cannot be NaN): the compiled graph's
imputer treats "" as missing. The first output is the prediction; a second tensor output holds
the scores (probabilities, or an SVC's decision values, which are never served as
probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from streamfn.models.columns import NUMERIC_KINDS, Columns, column, size
from streamfn.models.runtimes.base import Outputs
from streamfn.models.schemas import ModelSchema

NAME = "onnx"
MISSING_CATEGORY = ""  # what the compiled graph's string imputer takes for missing
# One intra-op thread: the infer process shares its cores with the poller loop, Redis and the
# ingest, and ONNX Runtime's spinning worker threads would burn them between batches; the parity
# report's timings use the same setting, so the choice is made on what serving does.
THREADS = 1
_NUMBERS = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(int64)": np.int64,
            "tensor(int32)": np.int32}  # fmt: skip
_STRING = "tensor(string)"


class FeedError(ValueError):
    """The graph's inputs are not the signature's columns: it cannot be fed from records."""


class GraphError(RuntimeError):
    """ONNX Runtime cannot open the graph."""


def session(graph: bytes) -> ort.InferenceSession:
    """A CPU session: THREADS intra-op threads, sequential, every graph optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime's errors (InvalidGraph, Fail…) derive from Exception
        raise GraphError(f"{type(error).__name__}: {error}") from error


def strings(values: np.ndarray) -> np.ndarray:
    """A string column for ONNX Runtime: objects, a missing value (None or NaN) as ""."""
    return np.array([MISSING_CATEGORY if v is None or v != v else v for v in values], dtype=object)


@dataclass(frozen=True)
class _Input:
    """How one graph input is made from the columns."""

    name: str
    make: Callable[[Columns], np.ndarray]


def _per_column(name: str, kind: str, dtype: object, rank: int) -> _Input:
    shape = (-1, 1) if rank == 2 else (-1,)
    if kind == _STRING:
        return _Input(name, lambda c: strings(column(c, name)).reshape(shape))
    return _Input(name, lambda c: np.asarray(column(c, name), dtype=dtype).reshape(shape))


def feed_plan(graph: ort.InferenceSession, schema: ModelSchema) -> list[_Input]:
    """How each input of the graph is made from the schema's columns; FeedError when it can't."""
    inputs = graph.get_inputs()
    kinds = {c.name: c.kind for c in schema.columns}
    if all(i.name in kinds for i in inputs):
        plan = []
        for i in inputs:
            numeric = kinds[i.name] in NUMERIC_KINDS
            if (i.type == _STRING) == numeric or (numeric and i.type not in _NUMBERS):
                raise FeedError(f"input {i.name!r} is a {i.type}, the column a {kinds[i.name]}")
            plan.append(_per_column(i.name, i.type, _NUMBERS.get(i.type), len(i.shape)))
        return plan
    (only, *others) = inputs
    width = only.shape[-1] if len(only.shape) == 2 else None
    numbers = all(kind in NUMERIC_KINDS for kind in kinds.values())
    if others or only.type not in _NUMBERS or not numbers or width not in (len(kinds), None):
        names = ", ".join(f"{i.name} {i.type}{list(i.shape)}" for i in inputs)
        raise FeedError(f"the graph's inputs ({names}) are not the signature's columns")
    dtype, names = _NUMBERS[only.type], list(schema.names)

    def stacked(columns: Columns) -> np.ndarray:
        return np.column_stack([column(columns, n) for n in names]).astype(dtype)

    return [_Input(only.name, stacked)]


class OnnxRuntime:
    """One ONNX Runtime session per version, run once per batch for labels and scores."""

    name = NAME

    def __init__(self, graph: bytes, schema: ModelSchema) -> None:
        self.session = session(graph)
        self.plan = feed_plan(self.session, schema)
        outputs = self.session.get_outputs()
        self.prediction = outputs[0].name
        tensors = [o.name for o in outputs[1:] if o.type.startswith("tensor(")]
        self.scores = tensors[0] if tensors else None

    def feed(self, columns: Columns) -> dict[str, np.ndarray]:
        """The session's inputs made from the batch's columns."""
        return {i.name: i.make(columns) for i in self.plan}

    def run(self, columns: Columns, probabilities: bool) -> Outputs:
        """One session run: the predictions, and the scores output when asked."""
        wanted = [self.prediction]
        if probabilities and self.scores is not None:
            wanted.append(self.scores)
        if size(columns) == 0:
            return Outputs(np.asarray([]), np.empty((0, 0)) if len(wanted) > 1 else None)
        found = self.session.run(wanted, self.feed(columns))
        values = np.asarray(found[0]).ravel()
        if len(found) == 1:
            return Outputs(values)
        return Outputs(values, np.asarray(found[1], dtype=np.float64))
