"""A classifier version's calibration: its scores mapped to probabilities that say how often it
is right, so that a window's performance can be estimated before any label comes back
(confidence-based performance estimation, CBPE).

`fit` learns it on a held-out split (labels known, not the training data): one mapping per class,
one-vs-rest, from the class's score (a `predict_proba` column, or an SVC's `decision_function`
column where there are no probabilities) to the probability that the class is the true one;
isotonic regression or Platt's sigmoid, whichever has the lower calibration error on held-out
folds of that split; probabilities already calibrated better than either are kept as they are.
`apply` maps a batch's scores and normalises each row to sum to 1. The result is JSON
(`calibration.json`, logged beside the version) and applied with numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FILE = "calibration.json"
METHODS = ("isotonic", "platt")
IDENTITY = "none"  # probabilities kept as the model gives them
FOLDS = 5
BINS = 10  # of the expected calibration error


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """How far probabilities are from the frequencies they predict: over BINS equal-width bins
    of every class's probability, the gap between the mean probability and the share of rows
    where the class was true, weighted by the rows in the bin."""
    p = probabilities.ravel()
    hit = (truth[:, None] == np.arange(probabilities.shape[1])[None, :]).ravel().astype(float)
    bins = np.minimum((p * BINS).astype(int), BINS - 1)
    total = np.bincount(bins, minlength=BINS)
    gap = np.abs(np.bincount(bins, p, BINS) - np.bincount(bins, hit, BINS))
    return float(gap.sum() / max(total.sum(), 1))


def _fit_one(method: str, scores: np.ndarray, hit: np.ndarray) -> dict[str, Any]:
    """One class's mapping from its scores (hit: 1 where it was the true class)."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        found = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, hit)
        return {"x": found.X_thresholds_.tolist(), "y": found.y_thresholds_.tolist()}
    from sklearn.linear_model import LogisticRegression

    if hit.min() == hit.max():  # one outcome only: a constant
        return {"a": 0.0, "b": 20.0 if hit[0] else -20.0}
    found = LogisticRegression(C=1e6).fit(scores[:, None], hit)
    return {"a": float(found.coef_[0, 0]), "b": float(found.intercept_[0])}


def _map_one(mapping: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    if not mapping:  # IDENTITY
        return np.clip(scores, 0.0, None)
    if "x" in mapping:
        return np.interp(scores, mapping["x"], mapping["y"])
    return 1.0 / (1.0 + np.exp(-(mapping["a"] * scores + mapping["b"])))


def _normalised(columns: np.ndarray) -> np.ndarray:
    total = columns.sum(axis=1, keepdims=True)
    uniform = np.full_like(columns, 1.0 / columns.shape[1])
    return np.where(total > 0, columns / np.where(total > 0, total, 1.0), uniform)


def _fit_method(method: str, scores: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    if method == IDENTITY:
        return [{} for _ in range(scores.shape[1])]
    return [_fit_one(method, scores[:, k], (truth == k).astype(float))
            for k in range(scores.shape[1])]  # fmt: skip


def _apply_mappings(mappings: list[dict[str, Any]], scores: np.ndarray) -> np.ndarray:
    columns = np.column_stack([_map_one(m, scores[:, k]) for k, m in enumerate(mappings)])
    return _normalised(columns)


def fit(
    scores: np.ndarray, truth_index: np.ndarray, classes: Sequence[Any], source: str,
    seed: int = 42,
) -> dict[str, Any]:  # fmt: skip
    """The calibration of a version from its scores on a held-out split (one column per class,
    in `classes` order) and the true classes' positions in `classes`."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth_index)
    order = np.random.default_rng(seed).permutation(len(truth))
    folds = np.array_split(order, FOLDS)
    errors: dict[str, float] = {}
    candidates = (*METHODS, IDENTITY) if source == "predict_proba" else METHODS
    for method in candidates:
        held = []
        for i, test in enumerate(folds):
            train = np.concatenate([f for j, f in enumerate(folds) if j != i])
            mappings = _fit_method(method, scores[train], truth[train])
            held.append(
                expected_calibration_error(_apply_mappings(mappings, scores[test]), truth[test])
            )
        errors[method] = float(np.mean(held))
    method = min(candidates, key=lambda m: errors[m])
    return {
        "method": method,
        "source": source,
        "classes": [str(c) for c in classes],
        "mappings": _fit_method(method, scores, truth),
        "rows": len(truth),
        "calibration_error": {m: round(e, 6) for m, e in errors.items()},  # on held-out folds
    }


def apply(calibration: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Each row's calibrated probability per class (columns in the calibration's class order)."""
    return _apply_mappings(calibration["mappings"], np.asarray(scores, dtype=np.float64))


def scores_of(estimator: Any, frame: Any) -> tuple[np.ndarray, str] | None:
    """A classifier's scores for the calibration (one column per class, the estimator's class
    order) and where they came from, or None for a model with neither probabilities nor a
    decision function of one column per class (a regressor, a binary SVC's single margin)."""
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(frame), dtype=np.float64), "predict_proba"
    if hasattr(estimator, "decision_function"):
        found = np.asarray(estimator.decision_function(frame), dtype=np.float64)
        classes = getattr(estimator, "classes_", ())
        if found.ndim == 2 and found.shape[1] == len(classes):
            return found, "decision_function"
    return None


def fit_model(estimator: Any, frame: Any, truth: Sequence[Any]) -> dict[str, Any] | None:
    """The calibration of a fitted classifier from held-out rows and their true classes (None
    when it has no scores per class, or a true class it does not know)."""
    found = scores_of(estimator, frame)
    classes = list(getattr(estimator, "classes_", ()))
    if found is None or not classes:
        return None
    position = {str(c): i for i, c in enumerate(classes)}
    truth_index = np.asarray([position.get(str(t), -1) for t in truth])
    if (truth_index < 0).any():
        return None
    return fit(found[0], truth_index, classes, found[1])


def calibrated(
    calibration: dict[str, Any], estimator: Any, frame: Any,
    probabilities: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """A batch's calibrated probabilities: from the probabilities already computed when the
    calibration reads them, else from the estimator's own scores."""
    if calibration["source"] == "predict_proba" and probabilities is not None:
        return apply(calibration, probabilities)
    found = scores_of(estimator, frame)
    if found is None:
        raise ValueError("the model gives no scores to calibrate")
    return apply(calibration, found[0])
