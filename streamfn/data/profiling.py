"""`streamfn profile`: the constraints and reference profile of a model someone else trained.

From a CSV of the data the model was trained on (or data like it), for the version the alias
points to: the schema comes from its signature, each input is profiled (ranges, categories,
quantile bins, null shares), the version predicts the rows for its class shares, and both JSON
files are logged beside the version's model, where ingest, the infer function, the producer and
the drift windows read them.

With `--label COLUMN` the CSV's rows also carry their true class: a classifier is calibrated on
them (streamfn.models.calibration, `calibration.json`), so its windows' performance can be
estimated before labels come back. Those rows must be ones the model was not trained on, or it
will look surer than it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from streamfn.data.artifacts import log_beside_version
from streamfn.models import calibration, explain, reference, schemas
from streamfn.models.registry import ClientRegistry
from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import key_form


class ProfileError(ValueError):
    """The data cannot profile this model; the message says why."""


@dataclass(frozen=True)
class Profiled:
    """What `streamfn profile` logged for one version."""

    schema: ModelSchema
    rows: int
    profile: dict[str, Any]
    constraints: dict[str, Any]
    calibration: dict[str, Any] | None = None


def read_rows(path: Path, schema: ModelSchema) -> pd.DataFrame:
    """The CSV's columns that are the schema's inputs (names matched however spelt), typed."""
    return inputs_of(pd.read_csv(path), schema, path)


def inputs_of(raw: pd.DataFrame, schema: ModelSchema, path: Path) -> pd.DataFrame:
    """The columns of a CSV's frame that are the schema's inputs, typed."""
    by_key = {key_form(c.name): c for c in schema.columns}
    renamed = {h: by_key[key_form(h)].name for h in raw.columns if key_form(h) in by_key}
    frame = raw.rename(columns=renamed)
    missing = [c.name for c in schema.columns if c.name not in frame.columns]
    if missing:
        raise ProfileError(f"{path} lacks the model's inputs {missing}")
    for column in schema.columns:
        if column.kind in ("number", "integer"):
            frame[column.name] = pd.to_numeric(frame[column.name], errors="coerce")
        elif column.kind == "string":
            frame[column.name] = (
                frame[column.name].astype(object).where(frame[column.name].notna(), np.nan)
            )
    return frame[list(schema.names)]


def labels_of(raw: pd.DataFrame, label: str, path: Path) -> pd.Series:
    """The label column (its name matched however spelt)."""
    found = [c for c in raw.columns if key_form(c) == key_form(label)]
    if not found:
        raise ProfileError(f"{path} has no column {label!r} (columns: {', '.join(raw.columns)})")
    return raw[found[0]]


def calibrate(model: Any, frame: pd.DataFrame, labels: pd.Series) -> dict[str, Any]:
    """The calibration of a classifier from the labelled rows, or ProfileError saying why none."""
    estimator = model.get_raw_model() if "sklearn" in model.metadata.flavors else None
    known = labels.notna().to_numpy()
    if estimator is None or not known.any():
        raise ProfileError("--label needs a scikit-learn classifier and labelled rows")
    truth = labels[known].to_numpy()
    if truth.dtype.kind == "f" and np.all(truth == np.round(truth)):
        truth = truth.astype(np.int64)  # a CSV's integer labels read as floats beside gaps
    found = calibration.fit_model(estimator, frame[known], truth)
    if found is None:
        raise ProfileError(
            "the model gives no score per class (predict_proba or decision_function), or a "
            "label is not one of its classes: it cannot be calibrated"
        )
    return found


def profile_model(
    uri: str, alias: str, api_name: str, name: str, data: Path, flavours: frozenset[str],
    label: str | None = None,
) -> Profiled:  # fmt: skip
    """Profile the version `alias` points to (else the latest) from `data`, and log the files
    (with its calibration, when `label` names the CSV's column of true classes); a version of
    a flavour not in `flavours` (MODEL_FLAVORS) is refused before it is loaded."""
    registry = ClientRegistry(uri)
    version = registry.alias_version(name, alias).version
    schema = registry.schema(api_name, name, version, flavours)
    raw = pd.read_csv(data)
    frame = inputs_of(raw, schema, data)
    labels = labels_of(raw, label, data) if label else None
    if frame.empty:
        raise ProfileError(f"{data} has no rows")
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    predictions = np.asarray(model.predict(frame)).ravel()
    number = predictions.dtype.kind == "f"
    kept = schemas.ModelSchema(schema.model, name, version, schema.columns,
                               "number" if number else "class", schema.labels)  # fmt: skip
    estimator = model.get_raw_model() if "sklearn" in model.metadata.flavors else None
    attribution = explain.mean_attribution(estimator, frame, schema.names) if estimator else None
    profile = reference.build(frame, kept, predictions, attribution)
    constraints = reference.constraints(profile)
    files = {schemas.CONSTRAINTS_FILE: constraints, schemas.REFERENCE_FILE: profile}
    calibrated = None
    if labels is not None:
        calibrated = files[calibration.FILE] = calibrate(model, frame, labels)
    log_beside_version(registry.client, name, version, files)
    return Profiled(kept, len(frame), profile, constraints, calibrated)
