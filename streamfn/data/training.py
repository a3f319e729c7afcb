"""`streamfn train`: fit the three pipelines, log them to MLflow, compile them to ONNX (checked on
the held-out split), register them, move `champion`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lightgbm
import matplotlib
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import sklearn
import skops
import skops.io
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from streamfn.core.settings import SEED_MODELS
from streamfn.data import compiling, dataset
from streamfn.data.artifacts import log_files
from streamfn.models import calibration, explain, reference, schemas
from streamfn.models.compiled.sample import records_of
from streamfn.models.registry import ClientRegistry, NotRegisteredError, open_registry
from streamfn.models.seed import (
    CATEGORICAL,
    CLASS_LABELS,
    FEATURE_NAMES,
    NUMERIC,
    TARGET,
    burn_class,
)

matplotlib.use("Agg")  # no display here; figures go straight to MLflow
log = logging.getLogger(__name__)

EXPERIMENT = "streamfn"
TRAINABLE: tuple[str, ...] = tuple(SEED_MODELS)  # the models this module has a recipe for
SEED = 42
TEST_SIZE = 0.2
SCORE = "f1_macro"


@dataclass(frozen=True)
class Split:
    """The original recipe's 80/20 split of the raw features and the binned target."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class TrainResult:
    """What one model's training produced and whether it became the champion."""

    api_name: str
    registered_name: str
    version: str
    metrics: dict[str, float]
    champion_version: str
    promoted: bool
    seconds: float
    parity: dict[str, Any] = field(default_factory=dict)  # the version's parity.json


# Hyper-parameters of SVC and KNN are the original search's; LightGBM's are its usual defaults.
HYPERPARAMETERS: dict[str, dict[str, object]] = {
    "svm": {"kernel": "rbf", "C": 38.9, "gamma": 0.0043},
    "knn": {"n_neighbors": 19, "weights": "distance"},
    # 60 trees of 15 leaves score the held-out macro F1 of 300 trees of 31 (0.883 both) and
    # predict five times faster (10 against 47 µs a record, one thread, on this project's
    # machine; benchmarks/bench_infer.py): inference cost is the pipeline's bound.
    "lightgbm": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15},
}


def make_classifier(api_name: str, overrides: dict[str, object] | None = None) -> object:
    """A fresh, unfitted classifier for one API name (its hyper-parameters, with overrides)."""
    params = {**HYPERPARAMETERS[api_name], **(overrides or {})}
    if api_name == "svm":
        return SVC(**params)
    if api_name == "knn":
        return KNeighborsClassifier(**params)
    return lightgbm.LGBMClassifier(random_state=SEED, verbose=-1, **params)


def build_pipeline(classifier: object) -> Pipeline:
    """Imputation, one-hot encoding and scaling in front of the classifier, on raw features."""
    numeric = Pipeline(
        [
            ("impute", IterativeImputer(random_state=SEED, max_iter=10)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(drop="first", handle_unknown="ignore")),
        ]
    )
    prepare = ColumnTransformer(
        [("num", numeric, list(NUMERIC)), ("cat", categorical, list(CATEGORICAL))]
    )
    return Pipeline([("prepare", prepare), ("classify", classifier)])


def load_split(path: Path | None = None) -> Split:
    """Apply the original recipe: drop ids and rows without target or with 2+ nulls, split 80/20."""
    frame = dataset.load(path) if path else dataset.load()
    frame = frame.dropna(subset=[TARGET])
    frame = frame[frame[list(FEATURE_NAMES)].isna().sum(axis=1) < 2]
    features = frame[list(FEATURE_NAMES)].astype(dict.fromkeys(NUMERIC, "float64"))
    target = frame[TARGET].map(burn_class).to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=TEST_SIZE, random_state=SEED
    )
    return Split(x_train, x_test, y_train, y_test)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Macro F1, precision and recall, plus accuracy, on the held-out split."""
    return {
        SCORE: float(f1_score(y_true, y_pred, average="macro")),
        "precision_macro": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, title: str) -> Figure:
    """The held-out confusion matrix as a matplotlib figure."""
    display = ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=[0, 1, 2], display_labels=list(CLASS_LABELS), colorbar=False
    )
    display.ax_.set_title(f"{title}: held-out confusion matrix")
    return display.figure_


def pip_requirements(api_name: str) -> list[str]:
    """What serving the model needs, pinned; stated explicitly so test tools never leak in."""
    pins = [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
    ]
    if api_name == "lightgbm":
        pins.append(f"lightgbm=={lightgbm.__version__}")
    return pins


def signature() -> ModelSignature:
    """The feature table's columns, each optional (the pipeline imputes what a record lacks),
    and one integer class out."""
    inputs = [
        ColSpec("double" if name in NUMERIC else "string", name, required=False)
        for name in FEATURE_NAMES
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("long")]))


def log_model(
    pipeline: Pipeline, api_name: str, split: Split, predicted: np.ndarray
) -> tuple[ModelInfo, compiling.Outcome]:
    """Log the fitted pipeline (skops format) with signature, example and the files streamfn
    reads beside it (constraints, labels, reference profile, and its compiled form with the
    parity report, checked on the held-out split); the caller registers it."""
    # The types in the file are exactly the ones this module built, so trusting them is sound;
    # without the list MLflow refuses to load a KNN or LightGBM pipeline saved with skops.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=signature(),
        input_example=split.x_train.dropna().head(3),
        pip_requirements=pip_requirements(api_name),
        serialization_format="skops",
        skops_trusted_types=trusted,
    )
    schema = schemas.seed_schema(api_name, SEED_MODELS[api_name])
    attribution = explain.mean_attribution(pipeline, split.x_train, FEATURE_NAMES)
    profile = reference.build(split.x_train, schema, predicted, attribution)
    compiled = compiling.compile_fitted(pipeline, schema, profile, records_of(split.x_test))
    files = {
        schemas.CONSTRAINTS_FILE: schemas.seed_constraints(),
        schemas.LABELS_FILE: schemas.seed_labels(),
        schemas.REFERENCE_FILE: profile,
        **compiling.files_of(compiled.compiled),
    }
    # Calibrated on the held-out split: the training rows would make the model look surer than
    # it is on records it never saw.
    found = calibration.fit_model(pipeline, split.x_test, split.y_test)
    if found is not None:
        files[calibration.FILE] = found
        mlflow.log_metric("calibration_error", min(found["calibration_error"].values()))
    log_files(MlflowClient(), info.model_id, files)
    return info, compiled


def register(client: MlflowClient, info: ModelInfo, name: str) -> str:
    """Register a logged model (its files all in place first) and return the new version."""
    found = mlflow.register_model(f"models:/{info.model_id}", name)
    return str(found.version)


def champion_score(client: MlflowClient, name: str, alias: str) -> tuple[str | None, float | None]:
    """The version the alias points to and its recorded macro F1 (None, None when unset)."""
    version = ClientRegistry(client.tracking_uri).alias_target(name, alias)
    if version is None:
        return None, None
    run_id = client.get_model_version(name, version).run_id
    return version, client.get_run(run_id).data.metrics.get(SCORE) if run_id else None


def promote(
    client: MlflowClient, name: str, version: str, score: float, alias: str
) -> tuple[str, bool]:
    """Point the alias at `version` unless the champion scored better; return the champion."""
    current, current_score = champion_score(client, name, alias)
    if current is not None and current_score is not None and score < current_score:
        log.info(
            "champion kept",
            extra={"model": name, "champion": current, "candidate": version, SCORE: score},
        )
        return current, False
    client.set_registered_model_alias(name, alias, version)
    return version, True


def ensure_experiment(client: MlflowClient, tracking_uri: str) -> str:
    """The experiment's id, creating it (artifacts beside a SQLite store) when missing."""
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    location = None
    if urlparse(tracking_uri).scheme == "sqlite":
        # A SQLite store has no artifact server: keep the artifacts next to the database file
        # rather than in whatever directory the command happened to be run from.
        database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        location = (database.parent / "mlartifacts").as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def train_one(
    client: MlflowClient, experiment_id: str, split: Split, api_name: str, alias: str,
    params: dict[str, object] | None = None, compete: bool = True,
) -> TrainResult:  # fmt: skip
    """Fit, evaluate, log, register and maybe promote one model (`compete`: only if it scores
    at least the alias's version; else the alias moves to it whatever it scores)."""
    started = time.perf_counter()
    pipeline = build_pipeline(make_classifier(api_name, params))
    with mlflow.start_run(experiment_id=experiment_id, run_name=api_name):
        mlflow.log_params(
            {
                **HYPERPARAMETERS[api_name],
                **(params or {}),
                "classifier": type(pipeline[-1]).__name__,
                "numeric_imputer": "IterativeImputer",
                "seed": SEED,
                "test_size": TEST_SIZE,
                "train_rows": len(split.x_train),
                "test_rows": len(split.x_test),
            }
        )
        pipeline.fit(split.x_train, split.y_train)
        predicted = pipeline.predict(split.x_test)
        metrics = evaluate(split.y_test, predicted)
        mlflow.log_metrics(metrics)
        figure = confusion_figure(split.y_test, predicted, SEED_MODELS[api_name])
        mlflow.log_figure(figure, "confusion_matrix.png")
        plt.close(figure)
        info, compiled = log_model(pipeline, api_name, split, predicted)
    name = SEED_MODELS[api_name]
    version = register(client, info, name)
    if compete:
        champion, promoted = promote(client, name, version, metrics[SCORE], alias)
    else:
        client.set_registered_model_alias(name, alias, version)
        champion, promoted = version, True
    return TrainResult(
        api_name, name, version, metrics, champion, promoted, time.perf_counter() - started,
        compiled.compiled.report,
    )  # fmt: skip


def missing_models(
    tracking_uri: str, models: tuple[str, ...] = TRAINABLE, alias: str = "champion"
) -> tuple[str, ...]:
    """The models among `models` with no version at the tracking URI, or whose served version
    (the alias's, else the latest) an older streamfn logged (no constraints beside it, so records
    could not be validated). Other versions, a challenger's say, do not count."""
    found = open_registry(tracking_uri)
    missing = []
    for api_name in models:
        name = SEED_MODELS[api_name]
        # An outage raises RegistryError: it is not a missing model.
        try:
            served = found.alias_version(name, alias).version
        except NotRegisteredError:
            missing.append(api_name)
            continue
        if found.file(name, served, schemas.CONSTRAINTS_FILE) is None:
            missing.append(api_name)
    return tuple(missing)


def train(
    tracking_uri: str,
    alias: str,
    models: tuple[str, ...] = TRAINABLE,
    data_path: Path | None = None,
    params: dict[str, object] | None = None,
    compete: bool = True,
) -> list[TrainResult]:
    """Train, log and register each model against the tracking URI (server or SQLite)."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, tracking_uri)
    split = load_split(data_path)
    return [
        train_one(client, experiment_id, split, name, alias, params, compete) for name in models
    ]


def parse_params(pairs: list[str]) -> dict[str, object]:
    """`key=value` hyper-parameters: numbers as numbers, true/false/none, else strings."""
    found: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r} is not key=value (e.g. n_estimators=200)")
        value: object = text
        lowered = text.strip().lower()
        if lowered in ("true", "false", "none"):
            value = {"true": True, "false": False, "none": None}[lowered]
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        found[key.strip()] = value
    return found
