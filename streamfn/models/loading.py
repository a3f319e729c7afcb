"""Loading one registered version: its artifacts downloaded once, its flavour checked against
MODEL_FLAVORS before anything of it runs, then its schema, reference profile, calibration and
runtime read while the download is at hand.

Fail-fast choice: MLflow's HTTP client retries 7 times with exponential backoff and a 120 s
timeout by default, so one call against a dead or hung server blocks for minutes. A cache built
on an http(s) URI therefore sets `MLFLOW_HTTP_REQUEST_MAX_RETRIES=1` and
`MLFLOW_HTTP_REQUEST_TIMEOUT=4` for this process (unless the operator set them), through
`mlflow.environment_variables`: a refused connection fails in milliseconds, a hung server in 8 s,
and the cache's own refresh interval is the retry policy (a cached version keeps serving). The
one retry (immediate: urllib3 does not back off before the first) is for a kept-alive connection
that a proxy or load balancer closed while idle, which fails the first request made on it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import orjson
import pandas as pd
from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.pyfunc import PyFuncModel

from streamfn.core import metrics
from streamfn.models import calibration, schemas, trust
from streamfn.models.loaded import LoadedModel
from streamfn.models.runtimes.choice import AUTO
from streamfn.models.runtimes.loading import runtime_of
from streamfn.models.schemas import ModelSchema

log = logging.getLogger(__name__)

HTTP_MAX_RETRIES = 1
HTTP_TIMEOUT_S = 4


def json_in(path: Path, name: str) -> Any:
    """A JSON file of a downloaded version, None when it has none."""
    found = path / name
    return orjson.loads(found.read_bytes()) if found.exists() else None


def schema_in(path: Path, api_name: str, registered: str, version: str) -> ModelSchema:
    """The schema of a downloaded version, from its MLmodel and JSON files."""
    return schemas.build(
        api_name, registered, version, (path / schemas.MLMODEL_FILE).read_text(),
        json_in(path, schemas.CONSTRAINTS_FILE), json_in(path, schemas.LABELS_FILE),
    )  # fmt: skip


class BoosterClassifier:
    """A native LightGBM Booster trained to classify, seen as a scikit-learn classifier: its
    `predict` gives probabilities, so the class is the most probable of 0 … k-1 (the labels it
    was trained on), as LightGBM's own LGBMClassifier decides."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.classes_ = np.arange(max(2, booster.num_model_per_iteration()))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's probability per class."""
        found = np.asarray(self.booster.predict(frame), dtype=np.float64)
        if found.ndim == 1:  # binary: the probability of class 1
            return np.column_stack((1.0 - found, found))
        return found

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's most probable class."""
        return self.predict_proba(frame).argmax(axis=1)


# LightGBM's classification objectives, as a Booster loaded from its file names them.
BOOSTER_CLASSIFIERS = frozenset({"binary", "multiclass", "multiclassova"})


def booster_of(booster: Any, schema: ModelSchema) -> tuple[Any, ModelSchema]:
    """A native LightGBM Booster called directly: a classifier's as BoosterClassifier, any
    other objective's (a regression) as it is, its output kind then the signature's."""
    if booster.params.get("objective") in BOOSTER_CLASSIFIERS:
        return BoosterClassifier(booster), replace(schema, output="class")
    return None, schema


def estimator_of(model: PyFuncModel, schema: ModelSchema) -> tuple[Any, ModelSchema]:
    """The scikit-learn estimator of a sklearn-flavoured model (else None), and the schema with
    its output kind taken from the estimator itself. A lightgbm-flavoured model is a native
    Booster (booster_of) or LightGBM's scikit-learn estimator, treated as any other."""
    flavors = model.metadata.flavors
    if "sklearn" not in flavors and "lightgbm" not in flavors:
        return None, schema
    from sklearn.base import is_classifier, is_regressor

    estimator = model.get_raw_model()
    if "lightgbm" in flavors:
        import lightgbm

        if isinstance(estimator, lightgbm.Booster):
            return booster_of(estimator, schema)
    if is_classifier(estimator):
        return estimator, replace(schema, output="class")
    if is_regressor(estimator):
        return estimator, replace(schema, output="number")
    return estimator, schema


def trusted(path: Path, flavours: frozenset[str], api_name: str, what: str) -> str:
    """The flavour of a downloaded version if MODEL_FLAVORS lists it; else a log line naming the
    variable, and UntrustedModelError."""
    try:
        return trust.check((path / schemas.MLMODEL_FILE).read_text(), flavours, what)
    except trust.UntrustedModelError as refused:
        log.error("model refused: MODEL_FLAVORS", extra={"model": api_name, "version": what,
                                                         "error": str(refused)})  # fmt: skip
        raise


def fail_fast_http() -> None:
    """Make MLflow's HTTP calls in this process fail within seconds instead of minutes."""
    for variable, value in (
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES, HTTP_MAX_RETRIES),
        (MLFLOW_HTTP_REQUEST_TIMEOUT, HTTP_TIMEOUT_S),
    ):
        if not variable.is_set():  # an operator's explicit choice wins
            variable.set(value)


def load_version(
    client: MlflowClient, uri: str, api_name: str, registered: str, version: str,
    runtime: str = AUTO, flavours: frozenset[str] = trust.DEFAULT,
) -> LoadedModel:  # fmt: skip
    """Download one version's artifacts, load them as a pyfunc model if its flavour is one of
    `flavours` (MODEL_FLAVORS: UntrustedModelError, before anything of it is loaded), and pick
    its runtime (PREDICT_RUNTIME `runtime`; the compiled graph is read while the download is
    at hand)."""
    started = time.perf_counter()
    # An explicit tracking URI, not the process-global one, and a private copy that is
    # deleted once the model is in memory (the sklearn flavour reads the file fully).
    source = client.get_model_version_download_uri(registered, version)
    with tempfile.TemporaryDirectory(prefix="streamfn-model-") as directory:
        path = mlflow.artifacts.download_artifacts(source, dst_path=directory, tracking_uri=uri)
        flavour = trusted(Path(path), flavours, api_name, f"{registered} v{version}")
        schema = schema_in(Path(path), api_name, registered, version)  # refused: no load
        profile = json_in(Path(path), schemas.REFERENCE_FILE)
        model = mlflow.pyfunc.load_model(path)
        estimator, schema = estimator_of(model, schema)
        calibrated = calibration_in(Path(path), schema, estimator)
        served, choice = runtime_of(runtime, Path(path), schema, model, estimator)
    metrics.MODEL_LOADS.labels(api_name, version).inc()
    # One line per load says which runtime serves and why; a warning when a compiled graph was
    # refused (failed parity, or cannot be opened), so that it is not missed.
    log.log(
        logging.WARNING if choice.refused else logging.INFO,
        "model loaded",
        extra={
            "model": api_name,
            "registered_model": registered,
            "version": version,
            "runtime": choice.runtime,
            "runtime_reason": choice.reason,
            "flavour": flavour,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return LoadedModel(schema, model, estimator, profile, served, choice, calibrated)


def calibration_in(path: Path, schema: ModelSchema, estimator: Any) -> dict[str, Any] | None:
    """A downloaded classifier's calibration, when it has one for its own classes (one that
    names other classes is logged and left out: its estimates would be about another model)."""
    found = json_in(path, calibration.FILE)
    if found is None or schema.output != "class":
        return None
    classes = [str(c) for c in getattr(estimator, "classes_", ())]
    if found.get("classes") != classes:
        log.warning("calibration left out: its classes are not the model's",
                    extra={"model": schema.model, "version": schema.version,
                           "calibrated": found.get("classes"), "classes": classes})  # fmt: skip
        return None
    return found
