"""What the infer function counts of the rows it writes, per model, version and window.

A window is MONITOR_WINDOW_S seconds of `received_at`. For each, in a Redis hash: the records,
each input's bin counts (the bins of the version's reference profile), its missing values and
those outside the reference's range, and each predicted class (or a regressor's bin). Counts are
computed with numpy over a batch's input columns (streamfn.models.columns: the same arrays
whatever runtime predicted, or a DataFrame of them), never record by record, and merged in Redis
in the same step that records the messages done, so that each row is counted exactly once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from streamfn.models import reference
from streamfn.models.columns import Columns
from streamfn.models.columns import column as column_of
from streamfn.models.schemas import ModelSchema
from streamfn.monitor.windowing import OTHER, shadow_prefix


def _number_fields(name: str, values: np.ndarray, spread: dict[str, Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    present = values[~np.isnan(values)]
    counts[f"m:{name}"] = int(values.size - present.size)
    edges = spread.get("edges") or []
    if edges:
        bins = np.bincount(reference.bin_index(present, edges), minlength=len(edges))
        counts.update({f"b:{name}:{i}": int(n) for i, n in enumerate(bins) if n})
    low, high = spread.get("min"), spread.get("max")
    if low is not None and high is not None:
        counts[f"o:{name}"] = int(np.count_nonzero((present < low) | (present > high)))
    return counts


def _category_fields(name: str, values: np.ndarray, spread: dict[str, Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    missing = pd.isna(values)
    counts[f"m:{name}"] = int(missing.sum())
    known = {c: i for i, c in enumerate(spread.get("categories", []))}
    present = pd.Series(values[~missing]).astype(str).value_counts()
    for category, n in present.items():
        index = known.get(category)
        if index is None:
            counts[f"o:{name}"] += int(n)
            counts[f"b:{name}:{OTHER}"] += int(n)
        else:
            counts[f"b:{name}:{index}"] += int(n)
    return counts


def _prediction_fields(predictions: list[Any], spread: dict[str, Any] | None) -> Counter[str]:
    if spread is not None and spread.get("kind") == "number":
        values = np.asarray(predictions, dtype=np.float64)
        index = reference.bin_index(values, spread["edges"])
        return Counter({f"p:{i}": int(n) for i, n in enumerate(np.bincount(index)) if n})
    classes = pd.Series([str(p) for p in predictions]).value_counts()
    return Counter({f"p:{c}": int(n) for c, n in classes.items()})


def shadow_fields(
    challenger_version: str, champion: list[Any], challenger: list[Any],
    profile: dict[str, Any] | None, classes: bool,
) -> Counter[str]:  # fmt: skip
    """The counts of a batch's shadow rows (all in one window): rows compared, rows agreeing,
    for classifiers the champion x challenger confusion cells, the challenger's predictions."""
    prefix = shadow_prefix(challenger_version)
    ours = np.asarray([str(v) for v in champion], dtype=object)
    theirs = np.asarray([str(v) for v in challenger], dtype=object)
    agreeing = int(np.count_nonzero(ours == theirs))
    counts: Counter[str] = Counter({f"{prefix}n": len(ours), f"{prefix}a": agreeing})
    if classes:
        cells = pd.Series(list(zip(ours, theirs, strict=True))).value_counts()
        counts.update({f"{prefix}c:{a}:{b}": int(n) for (a, b), n in cells.items()})
    spread = (profile or {}).get("prediction")
    counts.update({prefix + k: n for k, n in _prediction_fields(challenger, spread).items()})
    return counts


# Sums of probabilities and contributions are kept in millionths, as integers: Redis adds them
# exactly, whatever the order the batches come in (a float sum would depend on it).
SCALE = 1_000_000


def estimated_fields(
    probabilities: np.ndarray, predictions: list[Any], classes: list[Any]
) -> Counter[str]:
    """The expected confusion cells of a batch's rows (CBPE): for each predicted class, the sum
    of each class's calibrated probability over the rows predicted so, `e:<true>:<predicted>`,
    in millionths of a row."""
    predicted = np.asarray([str(p) for p in predictions], dtype=object)
    counts: Counter[str] = Counter()
    for label in np.unique(predicted):
        sums = probabilities[predicted == label].sum(axis=0)
        for cls, total in zip(classes, sums, strict=True):
            counts[f"e:{cls}:{label}"] = round(float(total) * SCALE)
    return +counts  # the non-zero cells only


def attribution_fields(names: list[str], contributions: np.ndarray) -> Counter[str]:
    """What a batch's explained rows add to the window: the rows (`xn`) and each input's sum of
    absolute contributions (`x:<input>`, in millionths)."""
    sums = np.abs(contributions).sum(axis=0)
    counts: Counter[str] = Counter({"xn": int(contributions.shape[0])})
    pairs = zip(names, sums, strict=True)
    counts.update({f"x:{name}": round(float(s) * SCALE) for name, s in pairs})
    return counts


def batch_fields(
    schema: ModelSchema, columns: Columns, predictions: list[Any], profile: dict[str, Any] | None
) -> Counter[str]:
    """The counts of a batch's rows (all in one window): records, inputs, predictions."""
    counts: Counter[str] = Counter({"records": len(predictions)})  # one prediction per row
    features = (profile or {}).get("features", {})
    for column in schema.columns:
        spread = features.get(column.name, {})
        values = column_of(columns, column.name)
        if column.kind in ("number", "integer"):
            counts.update(_number_fields(column.name, values.astype(np.float64), spread))
        else:
            counts.update(_category_fields(column.name, values, spread))
    counts.update(_prediction_fields(predictions, (profile or {}).get("prediction")))
    return +counts  # the non-zero counts only
