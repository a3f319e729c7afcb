"""IterativeImputer (skl2onnx has no converter) and SimpleImputer on strings with NaN as the
missing marker (skl2onnx refuses it)."""

from __future__ import annotations

import copy

import numpy as np
from onnx import TensorProto
from skl2onnx.common._container import ModelComponentContainer
from skl2onnx.common._topology import Operator, Scope
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from skl2onnx.operator_converters.common import concatenate_variables
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.linear_model import BayesianRidge

from streamfn.models.compiled.converters.graph import Graph

# The graph's missing category. ONNX string tensors have no NaN, so the runtime's feed writes
# this for a missing category; ingest never lets "" through for a column with categories.
MISSING_CATEGORY = ""


def iterative_imputer_shape(operator: Operator) -> None:
    """[N, kept features] of the input's element type; features all missing at fit time are
    dropped unless the imputer keeps them."""
    imputer: IterativeImputer = operator.raw_operator
    width = int(imputer.n_features_in_)
    if not imputer.keep_empty_features:
        width = int(np.count_nonzero(~imputer._is_empty_feature))
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = operator.inputs[0].type.__class__([n, width])


def iterative_imputer_convert(
    scope: Scope, operator: Operator, container: ModelComponentContainer
) -> None:
    """IterativeImputer.transform (sample_posterior=False) written out as ONNX ops.

    transform() does, on the kept features:
      1. mask = isnan(X); Xt = X with NaN replaced by the initial imputer's statistics;
      2. if n_iter_ == 0 or every cell of the *batch* is missing: Xt as it is;
      3. per (feat_idx, neighbor_feat_idx, estimator) of imputation_sequence_, in order:
         Xt[mask[:, feat_idx], feat_idx] = clip(Xt[:, neighbors] @ coef + intercept, min, max).
    Each step is one Gemm over the full width (coefficients scattered into a zero column, so the
    feature itself and non-neighbours weigh exactly 0; Xt has no NaN after step 1, so 0 * x is
    exactly 0) and a Where on the precomputed cells `mask & (column == feat_idx)`: two nodes a
    step instead of a gather, concat and scatter.
    """
    imputer: IterativeImputer = operator.raw_operator
    if imputer.sample_posterior:
        raise NotImplementedError("IterativeImputer(sample_posterior=True) draws random numbers")
    if imputer.add_indicator:
        raise NotImplementedError("IterativeImputer(add_indicator=True) is not converted")
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        raise NotImplementedError("IterativeImputer converts with missing_values=np.nan only")
    dtype = np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32
    g = Graph(scope, container, dtype)

    x = concatenate_variables(scope, operator.inputs, container)
    kept = np.arange(imputer.n_features_in_)
    if not imputer.keep_empty_features and imputer._is_empty_feature.any():
        kept = np.flatnonzero(~imputer._is_empty_feature)
        x = g.node("Gather", [x, g.const("kept", kept)], axis=1)
    width = len(kept)

    mask = g.node("IsNaN", [x])
    statistics = imputer.initial_imputer_.statistics_[kept].reshape(1, width)
    initial = g.node("Where", [mask, g.const("initial_fill", statistics), x])
    if imputer.n_iter_ == 0 or not imputer.imputation_sequence_:
        container.add_node("Identity", [initial], [operator.outputs[0].full_name])
        return

    cells: dict[int, str] = {}  # feature -> the missing cells its steps may write
    for step in imputer.imputation_sequence_:
        if step.feat_idx not in cells:
            one_hot = (np.arange(width) == step.feat_idx).reshape(1, width)
            cells[step.feat_idx] = g.node("And", [mask, g.const("is_column", one_hot)])

    current = initial
    for step in imputer.imputation_sequence_:
        current = _imputation_step(g, imputer, step, current, cells[step.feat_idx], width)

    # sklearn skips the rounds when every cell of the batch is missing (`np.all(mask)`): rare
    # (one record with no number at all), and cheap to honour exactly.
    as_number = g.node("Cast", [mask], to=g.proto)
    all_missing = g.node(
        "Cast", [g.node("ReduceMin", [as_number], keepdims=1)], to=TensorProto.BOOL
    )
    g.node("Where", [all_missing, initial, current], out=operator.outputs[0].full_name)


def _imputation_step(
    g: Graph, imputer: IterativeImputer, step: object, current: str, cells: str, width: int
) -> str:
    """One step of the imputation sequence: predict the feature from its neighbours, clip, and
    write it into the cells that were missing."""
    estimator = step.estimator  # type: ignore[attr-defined]
    # BayesianRidge (the default) predicts X @ coef_ + intercept_, as any linear regressor does;
    # anything else (trees, KNN) would need a graph of its own.
    if not isinstance(estimator, BayesianRidge) and not hasattr(estimator, "coef_"):
        raise NotImplementedError(f"imputation estimator {type(estimator).__name__}")
    feature = step.feat_idx  # type: ignore[attr-defined]
    weights = np.zeros((width, 1))
    weights[np.asarray(step.neighbor_feat_idx), 0] = np.ravel(estimator.coef_)  # type: ignore[attr-defined]
    predicted = g.node(
        "Gemm", [current, g.const("w", weights), g.const("b", np.array([estimator.intercept_]))]
    )
    low, high = float(imputer._min_value[feature]), float(imputer._max_value[feature])
    if np.isfinite(low) or np.isfinite(high):
        # np.clip with infinite bounds is a no-op: the node is only worth it with a finite one.
        predicted = g.node("Clip", [predicted, g.const("lo", low), g.const("hi", high)])
    return g.node("Where", [cells, predicted, current])


def simple_imputer_convert(
    scope: Scope, operator: Operator, container: ModelComponentContainer
) -> None:
    """skl2onnx's SimpleImputer converter, taught one more case: strings whose missing marker is
    NaN (streamfn's categorical branch). The graph then treats MISSING_CATEGORY as missing: the
    upstream converter is handed a shallow copy whose marker is that string. Any other case goes
    upstream unchanged."""
    imputer: SimpleImputer = operator.raw_operator
    marker = imputer.missing_values
    strings = isinstance(operator.inputs[0].type, StringTensorType)
    if strings and isinstance(marker, float) and np.isnan(marker):
        proxy = copy.copy(imputer)
        proxy.missing_values = MISSING_CATEGORY
        operator.raw_operator = proxy
        try:
            convert_sklearn_imputer(scope, operator, container)
        finally:
            operator.raw_operator = imputer
        return
    convert_sklearn_imputer(scope, operator, container)
