"""The reference profile of a model version: how its training inputs and predictions were spread.

Logged with each version as `reference_profile.json`, it is what live traffic is compared with
(drift) and what the producer draws records from for a model it has no sampler for. Per input:
a number's ~10 quantile bins (edges and shares) and its range, a string's categories and shares,
and the share of nulls; per prediction: each class's share, or a regressor's bins; and, for a
model with exact attribution (streamfn.models.explain), each input's mean |contribution|, the
ranking a window's attribution drift is measured against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamfn.models.schemas import ModelSchema

BINS = 10
PROFILE_VERSION = 1


def number_edges(values: np.ndarray, bins: int = BINS) -> list[float]:
    """Where each bin starts: the 0, 1/bins, … quantiles that are values of the data, ties
    merged, so a column of few values gets one bin per value. The last bin has no end."""
    if values.size == 0:
        return []
    starts = np.quantile(values, np.arange(bins) / bins, method="lower")
    return [float(v) for v in np.unique(starts)]


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The bin of each value; a value below the first start falls in the first bin."""
    index = np.searchsorted(np.asarray(edges), values, side="right") - 1
    return np.clip(index, 0, max(len(edges) - 1, 0))


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """The share of values in each bin of `edges`."""
    if not edges:
        return []
    counts = np.bincount(bin_index(values, edges), minlength=len(edges))
    return (counts / max(values.size, 1)).tolist()


def number_profile(column: pd.Series) -> dict[str, Any]:
    """Edges, shares, range and null share of a numeric column."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    present = values[~np.isnan(values)]
    edges = number_edges(present)
    return {
        "kind": "number",
        "edges": edges,
        "shares": bin_shares(present, edges),
        "min": float(present.min()) if present.size else None,
        "max": float(present.max()) if present.size else None,
        "integer": bool(present.size) and bool(np.all(present == np.round(present))),
        "null_share": float(1 - present.size / max(len(values), 1)),
    }


def category_profile(column: pd.Series) -> dict[str, Any]:
    """Categories (most frequent first), their shares and the null share of a string column."""
    present = column.dropna().astype(str)
    shares = present.value_counts(normalize=True)
    return {
        "kind": "category",
        "categories": [str(v) for v in shares.index],
        "shares": [float(s) for s in shares.to_numpy()],
        "null_share": float(1 - len(present) / max(len(column), 1)),
    }


def prediction_profile(predictions: np.ndarray, output: str) -> dict[str, Any]:
    """Shares of each predicted class, or a regressor's quantile bins."""
    if output == "number":
        values = np.asarray(predictions, dtype=np.float64)
        edges = number_edges(values)
        return {"kind": "number", "edges": edges, "shares": bin_shares(values, edges)}
    classes, counts = np.unique(np.asarray(predictions).astype(str), return_counts=True)
    return {
        "kind": "class",
        "classes": classes.tolist(),
        "shares": (counts / counts.sum()).tolist() if counts.size else [],
    }


def build(
    frame: pd.DataFrame, schema: ModelSchema, predictions: np.ndarray,
    attribution: dict[str, float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The reference profile of these inputs (the schema's columns) and their predictions, with
    each input's mean |contribution| when the model has exact attribution."""
    features = {
        c.name: category_profile(frame[c.name])
        if c.kind in ("string", "boolean")
        else number_profile(frame[c.name])
        for c in schema.columns
    }
    return {
        "version": PROFILE_VERSION,
        "records": len(frame),
        "features": features,
        "prediction": prediction_profile(predictions, schema.output),
        **({"attribution": attribution} if attribution else {}),
    }


def constraints(profile: dict[str, Any]) -> dict[str, Any]:
    """`feature_constraints.json` from a profile: each number's range, each string's categories."""
    features: dict[str, Any] = {}
    for name, spread in profile["features"].items():
        if spread["kind"] == "number" and spread["min"] is not None:
            features[name] = {"min": spread["min"], "max": spread["max"]}
        elif spread["kind"] == "category" and spread["categories"]:
            features[name] = {"categories": spread["categories"]}
    return {"features": features}
