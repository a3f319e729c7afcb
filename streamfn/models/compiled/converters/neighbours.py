"""KNeighborsClassifier (euclidean, uniform or distance weights) as ONNX ops, replacing skl2onnx
1.20's converter.

That converter, at opset >= 11, negates the TopK distances it meant to keep positive, so
`max(d, 1e-6)` is 1e-6 everywhere and distance weights silently become uniform (10 of 4,299
classes wrong on the seed, 0.12 probability error); it also weighs an exact match 1e6 where
sklearn gives the exact matches all the weight.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
from skl2onnx.common._container import ModelComponentContainer
from skl2onnx.common._topology import Operator, Scope
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.neighbors import KNeighborsClassifier

from streamfn.models.compiled.converters.graph import Graph

# Candidates beyond k ranked again by their exact distance: the first ranking's rounding
# (about 1e-15) can only reorder near-ties, which this margin absorbs.
MARGIN = 8


def knn_convert(scope: Scope, operator: Operator, container: ModelComponentContainer) -> None:
    """Brute force, as every ONNX KNN is (no tree in a graph):
      1. rank every training row by |t|^2 - 2 x.t (|x - t|^2 without the row's constant |x|^2:
         one Gemm, and no [N, S] Add, which cost as much as the Gemm) and keep k + MARGIN;
      2. the candidates' exact distances sqrt(sum((t - x)^2)), as the KD tree computes them, and
         the k nearest of those, sorted;
      3. sklearn's weights: 1/d, or in a row with an exact match 1 for the matches, 0 else;
      4. per-class sums over their total; the label is the first argmax (weighted_mode's rule).
    Ties at the k-th distance may be broken otherwise than the KD tree breaks them: the parity
    check is what says whether a version's data has any.
    """
    knn: KNeighborsClassifier = operator.raw_operator
    if knn.effective_metric_ != "euclidean" or callable(knn.weights) or knn.outputs_2d_:
        raise NotImplementedError("KNN converts with euclidean, single-output, uniform/distance")
    dtype = np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32
    g = Graph(scope, container, dtype)
    x = operator.inputs[0].full_name
    train = np.asarray(knn._fit_X, dtype=np.float64)
    k = int(knn.n_neighbors)
    candidates = min(k + MARGIN, train.shape[0])

    squares = g.const("train_sq", (train**2).sum(axis=1).reshape(1, -1))
    # alpha as an attribute is float32: -2 is exact in it (unlike SVC's gamma).
    rough = g.node("Gemm", [x, g.const("train_t", train.T.copy()), squares], alpha=-2.0)
    _, near = g.nodes("TopK", [rough, g.const("kc", [candidates])], 2, axis=1, largest=0,
                      sorted=1)  # fmt: skip
    rows = g.node("Gather", [g.const("train", train), near], axis=0)  # [N, c, d]
    diff = g.node("Sub", [rows, g.node("Unsqueeze", [x, g.const("axis1", [1])])])
    exact = g.node("Sqrt", [g.node("ReduceSum", [g.node("Mul", [diff, diff]),
                                                 g.const("axis2", [2])], keepdims=0)])  # fmt: skip
    dist, order = g.nodes("TopK", [exact, g.const("k", [k])], 2, axis=1, largest=0, sorted=1)
    index = g.node("GatherElements", [near, order], axis=1)  # training rows of the k nearest
    labels = g.node("Gather", [g.const("y", np.asarray(knn._y, dtype=np.int64)), index], axis=0)
    weight = _weights(g, knn, dist, labels)

    class_ids = np.arange(len(knn.classes_), dtype=np.int64).reshape(1, 1, -1)
    one_hot = g.node("Cast", [g.node("Equal", [g.node("Unsqueeze", [labels, g.const("axis2", [2])]),
                                               g.const("class_ids", class_ids)])],
                     to=g.proto)  # fmt: skip
    weighted = g.node("Mul", [one_hot, g.node("Unsqueeze", [weight, g.const("axis2", [2])])])
    per_class = g.node("ReduceSum", [weighted, g.const("axis1", [1])], keepdims=0)
    total = g.node("ReduceSum", [per_class, g.const("axis1", [1])], keepdims=1)
    g.node("Div", [per_class, total], out=operator.outputs[1].full_name)
    best = g.node("ArgMax", [per_class], axis=1, keepdims=0, select_last_index=0)
    classes = np.asarray(knn.classes_).astype(np.int64)
    g.node("Gather", [g.const("classes", classes), best], axis=0,
           out=operator.outputs[0].full_name)  # fmt: skip


def _weights(g: Graph, knn: KNeighborsClassifier, dist: str, labels: str) -> str:
    """[N, k] weights of the neighbours, as sklearn's _get_weights gives them."""
    if knn.weights != "distance":
        return g.node("Cast", [g.node("Equal", [labels, labels])], to=g.proto)  # ones
    matches = g.node("Cast", [g.node("Equal", [dist, g.const("zero", 0.0)])], to=g.proto)
    any_match = g.node("Cast", [g.node("ReduceMax", [matches, g.const("axis1", [1])],
                                       keepdims=1)], to=TensorProto.BOOL)  # fmt: skip
    # 1/0 = inf only in rows where Where takes `matches` instead.
    return g.node("Where", [any_match, matches, g.node("Reciprocal", [dist])])
