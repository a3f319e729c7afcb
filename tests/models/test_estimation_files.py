"""What training and `streamfn profile --label` log for estimated performance and attribution
drift: a calibration fitted on held-out rows, and the reference's mean |contribution| per input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamfn.core.plugins import parse_flavours
from streamfn.core.settings import SEED_MODELS
from streamfn.data import training
from streamfn.data.profiling import ProfileError, profile_model
from streamfn.models import calibration, schemas
from streamfn.models.registry import open_registry

from .conftest import FLAVOURS, WINE, Brought

ALLOWED = parse_flavours(FLAVOURS)  # the wine model is cloudpickled


def _file(uri: str, api_name: str, file_name: str) -> object:
    return open_registry(uri).json_file(SEED_MODELS[api_name], "1", file_name)


@pytest.mark.parametrize(
    ("api_name", "source"),
    [("lightgbm", "predict_proba"), ("knn", "predict_proba"), ("svm", "decision_function")],
)
def test_each_seed_version_is_calibrated_on_the_held_out_split(
    sqlite_registry: str, api_name: str, source: str
) -> None:
    found = _file(sqlite_registry, api_name, calibration.FILE)
    assert isinstance(found, dict)
    split = training.load_split()
    # The held-out rows, never the training ones; the SVC's margins stand in for probabilities.
    assert found["rows"] == len(split.y_test)
    assert found["source"] == source
    assert found["classes"] == ["0", "1", "2"]
    assert found["method"] == min(found["calibration_error"], key=found["calibration_error"].get)


def test_calibrated_probabilities_say_how_often_the_model_is_right(
    sqlite_registry: str,
) -> None:
    import mlflow

    mlflow.set_tracking_uri(sqlite_registry)
    model = mlflow.sklearn.load_model(f"models:/{SEED_MODELS['lightgbm']}/1")
    found = _file(sqlite_registry, "lightgbm", calibration.FILE)
    split = training.load_split()
    probabilities = calibration.calibrated(found, model, split.x_test)  # type: ignore[arg-type]
    assert probabilities.shape == (len(split.y_test), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    # Their mean confidence in the predicted class is the accuracy they imply, within 0.02.
    predicted = model.predict(split.x_test)
    confidence = probabilities[np.arange(len(predicted)), predicted].mean()
    assert confidence == pytest.approx((predicted == split.y_test).mean(), abs=0.02)


def test_the_reference_ranks_inputs_by_what_the_trees_use(sqlite_registry: str) -> None:
    profile = _file(sqlite_registry, "lightgbm", schemas.REFERENCE_FILE)
    attribution = profile["attribution"]  # type: ignore[index]
    ranked = sorted(attribution, key=attribution.get, reverse=True)
    assert ranked[0] == "Mental Fatigue Score"
    assert attribution["Gender"] < attribution["Mental Fatigue Score"] / 100
    # An SVC or KNN has no exact attribution: none is written rather than an approximation.
    assert "attribution" not in _file(sqlite_registry, "svm", schemas.REFERENCE_FILE)  # type: ignore[operator]


def test_profile_with_a_label_logs_the_calibration(brought: Brought, tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    data = wine.data.assign(Cultivar=wine.target)
    data.loc[::7, "Cultivar"] = None  # unlabelled rows are profiled, not calibrated on
    data.to_csv(tmp_path / "wine.csv", index=False)
    done = profile_model(
        brought.uri, "champion", "wine", WINE, tmp_path / "wine.csv", ALLOWED, label="cultivar"
    )
    assert done.calibration is not None
    assert done.calibration["rows"] == int(data["Cultivar"].notna().sum())
    assert done.rows == len(data)
    version = done.schema.version
    logged = open_registry(brought.uri).json_file(WINE, version, calibration.FILE)
    assert logged == done.calibration  # JSON keeps every float exactly


def test_profile_with_a_missing_or_foreign_label_says_why(brought: Brought, tmp_path: Path) -> None:
    data = brought.wine.assign(cultivar=7)  # a class the model does not know
    data.to_csv(tmp_path / "wine.csv", index=False)
    with pytest.raises(ProfileError, match="no column 'kind'"):
        profile_model(
            brought.uri, "champion", "wine", WINE, tmp_path / "wine.csv", ALLOWED, label="kind"
        )
    with pytest.raises(ProfileError, match="not one of its classes"):
        profile_model(
            brought.uri, "champion", "wine", WINE, tmp_path / "wine.csv", ALLOWED, label="cultivar"
        )
    assert isinstance(pd.read_csv(tmp_path / "wine.csv"), pd.DataFrame)
