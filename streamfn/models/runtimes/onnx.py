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
# Rows per session run. A graph holds whole [rows, width] intermediates where scikit-learn works
# row by row or in chunks: KNN's distances to all 17,193 training rows are 137 MB at 1,000 rows
# (a batch of 256 entries of 100 records is 25,600), SVC's kernel grows with its support
# vectors. At 256 rows the seed's KNN peaks at about 35 MB per intermediate, and a run costs
# ONNX Runtime well under a millisecond of overhead, so larger batches lose nothing.
CHUNK_ROWS = 256
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
        self.numbers = [c.name for c in schema.columns if c.kind in NUMERIC_KINDS]
        outputs = self.session.get_outputs()
        self.prediction = outputs[0].name
        tensors = [o.name for o in outputs[1:] if o.type.startswith("tensor(")]
        self.scores = tensors[0] if tensors else None

    def chunks(self, columns: Columns, rows: int) -> list[tuple[int, int]]:
        """Row ranges of at most CHUNK_ROWS, but none whose rows all lack every number while
        others have one: such a range joins its neighbour. scikit-learn's IterativeImputer skips
        its rounds when every cell of the *batch* is missing (and the graph does as it does), so
        a run of such rows alone would be imputed otherwise than in the batch natively."""
        bounds = [(start, min(start + CHUNK_ROWS, rows)) for start in range(0, rows, CHUNK_ROWS)]
        if len(bounds) == 1 or not self.numbers:
            return bounds
        has_number = np.zeros(rows, dtype=bool)
        for name in self.numbers:
            has_number |= ~np.isnan(np.asarray(column(columns, name), dtype=np.float64))
        if has_number.all() or not has_number.any():
            return bounds
        merged: list[tuple[int, int]] = []
        for start, end in bounds:
            both = has_number[start:end].any() and merged and has_number[slice(*merged[-1])].any()
            if merged and not both:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def feed(self, columns: Columns) -> dict[str, np.ndarray]:
        """The session's inputs made from the batch's columns."""
        return {i.name: i.make(columns) for i in self.plan}

    def run(self, columns: Columns, probabilities: bool) -> Outputs:
        """Session runs of at most CHUNK_ROWS rows: the predictions, and the scores output when
        asked."""
        wanted = [self.prediction]
        if probabilities and self.scores is not None:
            wanted.append(self.scores)
        rows = size(columns)
        if rows == 0:
            return Outputs(np.asarray([]), np.empty((0, 0)) if len(wanted) > 1 else None)
        feed = self.feed(columns)
        parts = [self.session.run(wanted, {k: v[start:end] for k, v in feed.items()})
                 for start, end in self.chunks(columns, rows)]  # fmt: skip
        values = np.concatenate([np.asarray(p[0]).ravel() for p in parts])
        if len(wanted) == 1:
            return Outputs(values)
        return Outputs(values, np.concatenate([np.asarray(p[1], np.float64) for p in parts]))
