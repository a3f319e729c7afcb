"""Models a user brings: trained on datasets that ship with scikit-learn, logged to the session's
registry beside the seed's three, and profiled with `streamfn profile`'s code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from streamfn.core.plugins import parse_flavours
from streamfn.core.settings import SEED_MODELS

WINE = "Wine_Classifier"
DIABETES = "Diabetes_Regressor"
UNSIGNED = "Unsigned_Model"
WINE_LABELS = {"0": "barolo", "1": "grignolino", "2": "barbera"}
# The user's models are cloudpickled (mlflow's default outside streamfn): listed on purpose.
FLAVOURS = "sklearn,lightgbm,sklearn:cloudpickle"


@dataclass(frozen=True)
class Brought:
    """The registry with the user's models, and the data each was trained on."""

    uri: str
    wine: pd.DataFrame  # inputs only
    diabetes: pd.DataFrame

    @property
    def models(self) -> str:
        """MODELS with the seed's three and the user's."""
        seed = ",".join(f"{a}={r}" for a, r in SEED_MODELS.items())
        return f"{seed},wine={WINE},diabetes={DIABETES},unsigned={UNSIGNED}"

    @property
    def flavours(self) -> str:
        """MODEL_FLAVORS that lets the user's cloudpickled models load."""
        return FLAVOURS


def _log(model: object, name: str, frame: pd.DataFrame | None) -> str:
    """Log and register a fitted model (with a signature when `frame` is given); its version."""
    import mlflow
    from mlflow.models import infer_signature

    signature = None if frame is None else infer_signature(frame, model.predict(frame))  # type: ignore[attr-defined]
    info = mlflow.sklearn.log_model(
        model, name="model", signature=signature, serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],
    )  # fmt: skip
    version = mlflow.register_model(f"models:/{info.model_id}", name).version
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return str(version)


@pytest.fixture(scope="session")
def brought(sqlite_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Brought:
    """Wine (a classifier), diabetes (a regressor) and a model logged without a signature."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.datasets import load_diabetes, load_wine
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from streamfn.data.artifacts import log_beside_version
    from streamfn.data.profiling import profile_model

    mlflow.set_tracking_uri(sqlite_registry)
    folder: Path = tmp_path_factory.mktemp("brought")
    wine = load_wine(as_frame=True)
    wine_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    wine_model.fit(wine.data, wine.target)
    version = _log(wine_model, WINE, wine.data)
    # Integer classes: their names come from a labels.json beside the model.
    log_beside_version(MlflowClient(), WINE, version, {"labels.json": WINE_LABELS})
    wine.data.to_csv(folder / "wine.csv", index=False)
    allowed = parse_flavours(FLAVOURS)
    profile_model(sqlite_registry, "champion", "wine", WINE, folder / "wine.csv", allowed)

    diabetes = load_diabetes(as_frame=True)
    _log(Ridge().fit(diabetes.data, diabetes.target), DIABETES, diabetes.data)
    diabetes.data.to_csv(folder / "diabetes.csv", index=False)
    profile_model(sqlite_registry, "champion", "diabetes", DIABETES, folder / "diabetes.csv",
                  allowed)  # fmt: skip

    _log(
        make_pipeline(StandardScaler(), LogisticRegression()).fit(wine.data, wine.target),
        UNSIGNED,
        None,
    )
    return Brought(sqlite_registry, wine.data, diabetes.data)
