"""`streamfn profile`: the constraints and reference profile of a model someone else trained.

From a CSV of the data the model was trained on (or data like it), for the version the alias
points to: the schema comes from its signature, each input is profiled (ranges, categories,
quantile bins, null shares), the version predicts the rows for its class shares, and both JSON
files are logged beside the version's model, where ingest, the infer function, the producer and
the drift windows read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from streamfn.data.artifacts import log_beside_version
from streamfn.models import reference, schemas
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


def read_rows(path: Path, schema: ModelSchema) -> pd.DataFrame:
    """The CSV's columns that are the schema's inputs (names matched however spelt), typed."""
    raw = pd.read_csv(path)
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


def profile_model(
    uri: str, alias: str, api_name: str, name: str, data: Path, flavours: frozenset[str]
) -> Profiled:
    """Profile the version `alias` points to (else the latest) from `data`, and log the files;
    a version of a flavour not in `flavours` (MODEL_FLAVORS) is refused before it is loaded."""
    registry = ClientRegistry(uri)
    version = registry.alias_version(name, alias).version
    schema = registry.schema(api_name, name, version, flavours)
    frame = read_rows(data, schema)
    if frame.empty:
        raise ProfileError(f"{data} has no rows")
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    predictions = np.asarray(model.predict(frame)).ravel()
    number = predictions.dtype.kind == "f"
    kept = schemas.ModelSchema(schema.model, name, version, schema.columns,
                               "number" if number else "class", schema.labels)  # fmt: skip
    profile = reference.build(frame, kept, predictions)
    constraints = reference.constraints(profile)
    files = {schemas.CONSTRAINTS_FILE: constraints, schemas.REFERENCE_FILE: profile}
    log_beside_version(registry.client, name, version, files)
    return Profiled(kept, len(frame), profile, constraints)
