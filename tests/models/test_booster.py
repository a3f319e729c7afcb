"""A model that is not scikit-learn: native LightGBM Boosters logged with mlflow.lightgbm.

A Booster's `predict` answers probabilities, not classes: one column per class for a multiclass
objective, the probability of class 1 for a binary one. Served as they came, a multiclass
Booster's k values per record were spread over k records (the predictions of the first record
written as the classes of the next ones). The registry here is a private SQLite store holding
only these Boosters, so nothing trains the seed's models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.settings import Settings, load_settings
from streamfn.infer import handler
from streamfn.models.cache import ModelCache
from streamfn.models.loaded import LoadedModel
from streamfn.models.runtimes.native import one_per_row
from streamfn.models.schemas import seed_schema
from tests.conftest import bucket_rows
from tests.factories import redis_poller

pytestmark = pytest.mark.slow

WINE_LABELS = {"0": "barolo", "1": "grignolino", "2": "barbera"}
MODELS = {"wine": "Wine_Booster", "cancer": "Cancer_Booster", "diabetes": "Diabetes_Booster"}


@dataclass(frozen=True)
class Boosters:
    """The registry, the Boosters as trained (to compare with), and their inputs."""

    uri: str
    trained: dict[str, Any]
    inputs: dict[str, pd.DataFrame]


def _register(booster: Any, name: str, inputs: pd.DataFrame, outputs: np.ndarray) -> str:
    """Log a Booster with its own flavour and a signature, register it as champion."""
    import mlflow
    from mlflow.models import infer_signature

    info = mlflow.lightgbm.log_model(booster, name="model",
                                     signature=infer_signature(inputs, outputs))  # fmt: skip
    version = str(mlflow.register_model(f"models:/{info.model_id}", name).version)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return version


@pytest.fixture(scope="module")
def boosters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boosters]:
    """A multiclass Booster (wine, its signature's output the class, as docs/models.md logs
    it), a binary one (breast cancer, its signature's output the probability, as
    `booster.predict` gives it) and a regression one (diabetes)."""
    import lightgbm as lgb
    import mlflow
    from mlflow import MlflowClient
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    from streamfn.data.artifacts import log_beside_version

    folder: Path = tmp_path_factory.mktemp("boosters")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)

    def train(objective: dict[str, Any], data: pd.DataFrame, target: pd.Series) -> Any:
        params = {**objective, "verbose": -1, "num_threads": 1, "seed": 7}
        return lgb.train(params, lgb.Dataset(data, target), num_boost_round=20)

    trained: dict[str, Any] = {}
    inputs: dict[str, pd.DataFrame] = {}

    wine = load_wine(as_frame=True)
    booster = train({"objective": "multiclass", "num_class": 3}, wine.data, wine.target)
    version = _register(booster, MODELS["wine"], wine.data,
                        booster.predict(wine.data).argmax(axis=1))  # fmt: skip
    log_beside_version(MlflowClient(), MODELS["wine"], version, {"labels.json": WINE_LABELS})
    trained["wine"], inputs["wine"] = booster, wine.data

    cancer = load_breast_cancer(as_frame=True)
    booster = train({"objective": "binary"}, cancer.data, cancer.target)
    _register(booster, MODELS["cancer"], cancer.data, booster.predict(cancer.data))
    trained["cancer"], inputs["cancer"] = booster, cancer.data

    diabetes = load_diabetes(as_frame=True)
    booster = train({"objective": "regression"}, diabetes.data, diabetes.target)
    _register(booster, MODELS["diabetes"], diabetes.data, booster.predict(diabetes.data))
    trained["diabetes"], inputs["diabetes"] = booster, diabetes.data

    yield Boosters(uri, trained, inputs)
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def cache(boosters: Boosters) -> ModelCache:
    return ModelCache(boosters.uri, "champion", 30.0, MODELS)


def served(
    cache: ModelCache, boosters: Boosters, model: str, rows: int
) -> tuple[LoadedModel, pd.DataFrame]:
    """The loaded model, and its input frame for the first rows of its data (as ingest passes
    them: records of the signature's columns)."""
    loaded = cache.get(model)
    records = boosters.inputs[model].head(rows).to_dict(orient="records")
    return loaded, loaded.frame(records)


def test_a_multiclass_booster_predicts_one_class_per_record(
    cache: ModelCache, boosters: Boosters
) -> None:
    loaded, frame = served(cache, boosters, "wine", 178)
    scores = boosters.trained["wine"].predict(boosters.inputs["wine"])
    assert scores.shape == (178, 3)  # what the Booster itself answers: 3 numbers a record
    assert loaded.schema.output == "class"
    predictions = loaded.predict(frame)
    assert predictions == scores.argmax(axis=1).tolist()
    assert set(predictions) == {0, 1, 2}
    assert loaded.classes == [0, 1, 2]
    assert loaded.has_probabilities
    np.testing.assert_allclose(loaded.probabilities(frame), scores)


def test_a_binary_booster_predicts_classes_from_its_probability(
    cache: ModelCache, boosters: Boosters
) -> None:
    loaded, frame = served(cache, boosters, "cancer", 50)
    chance = boosters.trained["cancer"].predict(boosters.inputs["cancer"].head(50))
    assert chance.shape == (50,)
    # Its signature says a float (the probability); the Booster's objective says a classifier.
    assert loaded.schema.output == "class"
    assert loaded.predict(frame) == (chance > 0.5).astype(int).tolist()
    assert loaded.classes == [0, 1]
    np.testing.assert_allclose(loaded.probabilities(frame), np.column_stack((1 - chance, chance)))


def test_a_regression_booster_predicts_numbers(cache: ModelCache, boosters: Boosters) -> None:
    loaded, frame = served(cache, boosters, "diabetes", 10)
    assert loaded.schema.output == "number"
    assert not loaded.has_probabilities
    expected = boosters.trained["diabetes"].predict(boosters.inputs["diabetes"].head(10))
    np.testing.assert_allclose(loaded.predict(frame), expected)


# ---- through ingest, a poller and the infer function, to the rows in the bucket ----------------


@pytest.fixture
def settings_for(
    redis_url: str, boosters: Boosters, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    models = ",".join(f"{api}={name}" for api, name in MODELS.items())
    base = {"REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": boosters.uri, "MODELS": models}
    return lambda **overrides: load_settings(**{**base, **overrides})


def test_a_booster_serves_end_to_end_with_labels_and_probabilities(
    settings_for: Callable[..., Settings], boosters: Boosters, s3: Any
) -> None:
    settings = settings_for(OUTPUT_PROBABILITIES=True)
    wine = boosters.inputs["wine"].iloc[[0, 70, 140]]  # one record of each class
    with TestClient(create_app(settings)) as client:
        listed = {m["model"]: m for m in client.get("/models").json()["models"]}
        assert listed["wine"]["output"] == "class"
        answer = client.post("/predict_stream?model=wine",
                             content=orjson.dumps({"data": wine.to_dict(orient="records")}),
                             headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 202, answer.text
    ctx = handler.build_context(settings)
    poller = redis_poller(settings, redis.Redis.from_url(settings.REDIS_URL),
                          lambda event: handler.handle(event, ctx))  # fmt: skip
    poller.run(burst=True)
    rows = [r for r in bucket_rows(s3) if r["model"] == "wine"]
    assert [r["record_index"] for r in rows] == ["0", "1", "2"]
    expected = boosters.trained["wine"].predict(wine).argmax(axis=1)
    assert expected.tolist() == [0, 1, 2]
    assert [r["prediction"] for r in rows] == ["0", "1", "2"]
    assert [r["prediction_label"] for r in rows] == list(WINE_LABELS.values())
    for row in rows:
        shares = [float(row[f"proba_{label}"]) for label in WINE_LABELS.values()]
        assert sum(shares) == pytest.approx(1.0)
        assert max(shares) == shares[int(row["prediction"])]


# ---- one prediction per row, whatever a model answers ---------------------------------------


class Answers:
    """A stand-in model that answers a fixed array, whatever it is asked."""

    def __init__(self, answer: np.ndarray) -> None:
        self.answer = answer

    def predict(self, _frame: pd.DataFrame) -> np.ndarray:
        return self.answer


def test_one_per_row_takes_a_class_from_scores_and_refuses_any_other_shape() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    assert one_per_row(scores, 2, "class").tolist() == [1, 0]
    assert one_per_row(np.array([[3.5], [4.5]]), 2, "number").tolist() == [3.5, 4.5]
    with pytest.raises(ValueError, match=r"shape \(2, 3\) for 2 rows"):
        one_per_row(scores, 2, "number")  # a regressor answering a matrix: never guessed
    with pytest.raises(ValueError, match=r"shape \(6,\) for 2 rows"):
        one_per_row(scores.ravel(), 2, "class")  # never spread over the wrong rows


def test_a_pyfunc_classifier_answering_scores_per_class_predicts_the_highest() -> None:
    """The path of a model MLflow's pyfunc serves (an XGBoost multi:softprob Booster answers
    so): no estimator, a class output in its signature, a score per class."""
    schema = seed_schema()
    frame = pd.DataFrame({name: [None, None] for name in schema.names})
    scores = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    loaded = LoadedModel(schema, Answers(scores))  # type: ignore[arg-type]
    assert loaded.predict(frame) == [1, 0]


def test_a_model_answering_the_wrong_count_fails_its_batch_instead_of_misplacing_rows() -> None:
    schema = seed_schema()
    frame = pd.DataFrame({name: [None, None] for name in schema.names})
    loaded = LoadedModel(schema, Answers(np.array([0, 1, 2, 0, 1, 2])))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one prediction per row"):
        loaded.predict(frame)
