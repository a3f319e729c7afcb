"""SVC (rbf, no probabilities, three classes or more) in double; anything else goes to
skl2onnx's own converter."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
from skl2onnx.common._container import ModelComponentContainer
from skl2onnx.common._topology import Operator, Scope
from skl2onnx.common.data_types import DoubleTensorType
from skl2onnx.operator_converters.support_vector_machines import convert_sklearn_svm_classifier
from sklearn.svm import SVC

from streamfn.models.compiled.converters.graph import Graph


def in_double(svc: SVC, operator: Operator) -> bool:
    """Whether this converter writes the SVC (else skl2onnx's float32 SVMClassifier does)."""
    return (
        isinstance(operator.inputs[0].type, DoubleTensorType)
        and getattr(svc, "kernel", None) == "rbf"
        and len(svc.classes_) > 2
        and not hasattr(svc, "predict_proba")  # probability=True: libsvm's Platt scaling
        and getattr(svc, "decision_function_shape", "ovr") == "ovr"
        and not getattr(svc, "break_ties", False)
        and isinstance(svc.support_vectors_, np.ndarray)
        and np.issubdtype(np.asarray(svc.classes_).dtype, np.integer)
    )


def svc_convert(scope: Scope, operator: Operator, container: ModelComponentContainer) -> None:
    """SVC as libsvm computes it, in double.

    skl2onnx's SVMClassifier keeps support vectors and coefficients as float32 attributes:
    decision values then differ from libsvm's by ~5e-5, while the seed's held-out split has a
    row whose smallest |one-vs-one decision value| is 6.7e-5, one rounding from another vote.
      K = exp(-gamma |x - sv|^2)               [N, S]      one Gemm, then Exp
      dec = K @ W + intercept                  [N, pairs]  libsvm's one-vs-one values
      label = classes[argmax(votes)], a pair's vote to its first class when dec > 0 (ArgMax
              takes the first maximum, as libsvm does)
      scores = decision_function (ovr): votes with dec >= 0 + s / (3 (|s| + 1)), s the signed
               sums of dec (sklearn's _ovr_decision_function)
    """
    svc: SVC = operator.raw_operator
    if not in_double(svc, operator):
        convert_sklearn_svm_classifier(scope, operator, container)
        return
    g = Graph(scope, container, np.float64)
    x = operator.inputs[0].full_name
    vectors = np.asarray(svc.support_vectors_, dtype=np.float64)
    weights, first, second, signs = _one_vs_one(svc, vectors.shape[0])

    squared = g.node("ReduceSum", [g.node("Mul", [x, x]), g.const("axis1", [1])], keepdims=1)
    # -gamma |x - sv|^2 in one Gemm, with no [N, S] broadcast Add or Mul (those are the cost):
    # [x, |x|^2] @ (-gamma [-2 sv^T; 1]) + (-gamma |sv|^2).
    augmented = g.node("Concat", [x, squared], axis=1)
    gamma = float(svc._gamma)
    stacked = -gamma * np.vstack([-2.0 * vectors.T, np.ones((1, vectors.shape[0]))])
    offset = -gamma * (vectors**2).sum(axis=1).reshape(1, -1)
    kernel = g.node("Exp", [g.node("Gemm", [augmented, g.const("sv", stacked),
                                            g.const("sv_sq", offset)])])  # fmt: skip
    intercept = np.asarray(svc.intercept_).reshape(1, -1)
    decision = g.node("Gemm", [kernel, g.const("dual", weights), g.const("rho", intercept)])

    def votes(test: str) -> str:
        compared = g.node(test, [decision, g.const("zero", 0.0)])
        won = g.node("Cast", [compared], to=TensorProto.DOUBLE)
        # A pair won goes to its first class, lost to its second: won @ (first - second) plus
        # the column sums of second.
        return g.node("Gemm", [won, g.const("f_minus_s", first - second),
                               g.const("s_sum", second.sum(axis=0).reshape(1, -1))])  # fmt: skip

    index = g.node("ArgMax", [votes("Greater")], axis=1, keepdims=0, select_last_index=0)
    classes = np.asarray(svc.classes_).astype(np.int64)
    g.node("Gather", [g.const("classes", classes), index], axis=0,
           out=operator.outputs[0].full_name)  # fmt: skip
    sums = g.node("MatMul", [decision, g.const("signs", signs)])
    plus_one = g.node("Add", [g.node("Abs", [sums]), g.const("one", 1.0)])
    damped = g.node("Mul", [g.const("three", 3.0), plus_one])
    g.node("Add", [votes("GreaterOrEqual"), g.node("Div", [sums, damped])],
           out=operator.outputs[1].full_name)  # fmt: skip


def _one_vs_one(svc: SVC, vectors: int) -> tuple[np.ndarray, ...]:
    """libsvm's pairs as matrices: the dual coefficients per pair [S, pairs], and per pair its
    first class, its second class and the signs of both [pairs, classes]."""
    n_classes = len(svc.classes_)
    starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    weights = np.zeros((vectors, len(pairs)))
    first, second, signs = (np.zeros((len(pairs), n_classes)) for _ in range(3))
    for p, (i, j) in enumerate(pairs):
        # libsvm's layout: class i's vectors use row j-1 of dual_coef_, class j's use row i.
        weights[starts[i] : starts[i + 1], p] = svc.dual_coef_[j - 1, starts[i] : starts[i + 1]]
        weights[starts[j] : starts[j + 1], p] = svc.dual_coef_[i, starts[j] : starts[j + 1]]
        first[p, i], second[p, j] = 1.0, 1.0
        signs[p, i], signs[p, j] = 1.0, -1.0
    return weights, first, second, signs
