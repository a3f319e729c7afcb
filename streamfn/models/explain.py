"""Reason codes: how much each of a record's inputs pushed the model towards the class it
predicted (for a regressor, towards its number), from the model itself, never approximated.

Tree models get exact TreeSHAP: LightGBM's own (`pred_contrib=True`), or the `shap` package's
TreeExplainer for a scikit-learn forest or gradient boosting (used only if it is installed).
Contributions are computed on the inputs as the pipeline's preprocessing hands them to the trees
and summed back to the user's input columns: a one-hot group to its category's input, a scaled or
imputed number to its own (a missing input still carries what its imputed value contributed).
For each class, a row's contributions plus the expected value are the model's raw score.

Other models (an SVC, a KNN) have no exact method here: `explainer_of` says why, and streamfn
refuses OUTPUT_EXPLANATIONS for them rather than invent numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


class NotExplainableError(ValueError):
    """The model has no exact attribution method here; the message says why."""


@dataclass(frozen=True)
class Contributions:
    """A batch's contributions: per row and input, towards the row's predicted class."""

    inputs: tuple[str, ...]
    values: np.ndarray  # rows x inputs
    expected: np.ndarray  # per row: the expected value of the predicted class's raw score


def _split(estimator: Any) -> tuple[Any, Any]:
    """(the preprocessing, or None; the final model) of a pipeline or a bare model."""
    steps = getattr(estimator, "steps", None)
    if steps:
        prepare = estimator[:-1] if len(steps) > 1 else None
        return prepare, steps[-1][1]
    return None, estimator


def _groups(prepare: Any, inputs: tuple[str, ...], width: int) -> np.ndarray:
    """The matrix summing the model's features back to the inputs (features x inputs): a
    feature belongs to the input its name is, or starts with followed by `_` (a one-hot
    column `<input>_<category>`), the longest such input."""
    if prepare is None:
        names = list(inputs)
    else:
        names = [str(n).split("__", 1)[-1] for n in prepare.get_feature_names_out()]
    if len(names) != width:
        raise NotExplainableError(f"the preprocessing gives {len(names)} features, the model "
                                  f"takes {width}")  # fmt: skip
    groups = np.zeros((width, len(inputs)))
    for i, name in enumerate(names):
        owners = [j for j, column in enumerate(inputs)
                  if name == column or name.startswith(column + "_")]  # fmt: skip
        if not owners:
            raise NotExplainableError(f"feature {name!r} belongs to no input")
        groups[i, max(owners, key=lambda j: len(inputs[j]))] = 1.0
    return groups


class Explainer:
    """Contributions of one model version's inputs, by exact TreeSHAP."""

    def __init__(self, estimator: Any, inputs: tuple[str, ...]) -> None:
        self.prepare, self.model = _split(estimator)
        self.inputs = inputs
        self._lightgbm = type(self.model).__module__.startswith("lightgbm")
        width = int(self.model.n_features_in_)
        self.groups = _groups(self.prepare, inputs, width)
        self._shap: Any = None
        if not self._lightgbm:
            import shap  # an optional dependency: only a scikit-learn tree model needs it

            self._shap = shap.TreeExplainer(self.model)

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix for a frame of the user's inputs."""
        found = frame if self.prepare is None else self.prepare.transform(frame)
        return np.asarray(found, dtype=np.float64)

    def raw(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions rows x classes x features, expected values rows x classes)."""
        if self._lightgbm:
            found = np.asarray(self.model.booster_.predict(matrix, pred_contrib=True))
            classes = max(found.shape[1] // (matrix.shape[1] + 1), 1)
            found = found.reshape(len(matrix), classes, matrix.shape[1] + 1)
            return found[:, :, :-1], found[:, :, -1]
        values = self._shap.shap_values(matrix)
        values = np.asarray(values)
        if values.ndim == 2:  # a regressor: one output
            values = values[:, None, :]
        elif values.shape[0] != len(matrix):  # classes first (older shap)
            values = np.moveaxis(values, 0, 1)
        else:  # rows, features, classes
            values = np.moveaxis(values, 2, 1)
        expected = np.broadcast_to(np.atleast_1d(self._shap.expected_value),
                                   (len(matrix), values.shape[1]))  # fmt: skip
        return values, np.asarray(expected)

    def contributions(self, frame: pd.DataFrame, predicted: np.ndarray) -> Contributions:
        """Each row's contributions by input towards its predicted class (`predicted`: the
        class's position among the model's classes; 0 for a regressor)."""
        per_class, expected = self.raw(self.features(frame))
        rows = np.arange(len(frame))
        index = np.minimum(predicted, per_class.shape[1] - 1)
        chosen = per_class[rows, index, :]
        return Contributions(self.inputs, chosen @ self.groups, expected[rows, index])


def explainer_of(estimator: Any, inputs: tuple[str, ...]) -> Explainer:
    """The explainer of a version's model, or NotExplainableError saying why there is none."""
    if estimator is None:
        raise NotExplainableError("the version is not a scikit-learn or LightGBM model")
    _, model = _split(estimator)
    kind = type(model).__name__
    tree = type(model).__module__.startswith("lightgbm") or kind in (
        "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
        "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
        "DecisionTreeClassifier", "DecisionTreeRegressor",
    )  # fmt: skip
    if not tree:
        raise NotExplainableError(
            f"{kind} has no exact attribution here (TreeSHAP is for tree models; a "
            "model-agnostic method would call the model many times per record and only "
            "approximate): no reason codes"
        )
    if not type(model).__module__.startswith("lightgbm"):
        try:
            import shap  # noqa: F401
        except ImportError:
            raise NotExplainableError(
                f"{kind}'s TreeSHAP needs the shap package: pip install shap"
            ) from None
    return Explainer(estimator, inputs)


def reasons(found: Contributions, count: int) -> list[list[tuple[str, float]]]:
    """Per row, the `count` inputs that pushed most towards its prediction, largest first."""
    order = np.argsort(-found.values, axis=1, kind="stable")[:, :count]
    return [[(found.inputs[j], float(found.values[i, j])) for j in row]
            for i, row in enumerate(order)]  # fmt: skip


def mean_attribution(
    estimator: Any, frame: pd.DataFrame, inputs: tuple[str, ...]
) -> dict[str, float] | None:
    """Each input's mean |contribution| towards the predicted class over `frame` (a reference
    profile's `attribution`), or None for a model without exact attribution."""
    try:
        explainer = explainer_of(estimator, inputs)
    except NotExplainableError:
        return None
    predicted = predicted_index(estimator, frame)
    found = explainer.contributions(frame, predicted)
    means = np.abs(found.values).mean(axis=0) if len(frame) else np.zeros(len(inputs))
    return {name: float(v) for name, v in zip(inputs, means, strict=True)}


def predicted_index(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """Each row's predicted class as its position among the model's classes (0 for a
    regressor)."""
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return np.zeros(len(frame), dtype=int)
    position = {str(c): i for i, c in enumerate(classes)}
    return np.asarray([position[str(p)] for p in estimator.predict(frame)], dtype=int)
