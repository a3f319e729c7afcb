"""Challenger versions for the tests, registered beside the seed's champions: one genuinely
different (fewer, smaller trees), one whose artifacts are gone, one whose predict raises."""

from __future__ import annotations

from pathlib import Path

from streamfn.core.settings import SEED_MODELS

CHALLENGED = "lightgbm"
# Few shallow trees: a model that disagrees with the champion on a share of the records.
WEAKER = {"n_estimators": 3, "num_leaves": 4}
# The champion's recipe with a few more trees: close to it, a challenger whose canary holds.
GOOD = {"n_estimators": 70, "learning_rate": 0.1, "num_leaves": 15}
RAISING_MODEL = Path(__file__).parent / "challenger" / "raising_model.py"


def train_challenger(uri: str, params: dict[str, object] | None = None) -> str:
    """`streamfn train --model lightgbm --alias challenger --params …`'s code; the version."""
    from streamfn.data import training

    [result] = training.train(uri, "challenger", (CHALLENGED,), params=params or WEAKER,
                              compete=False)  # fmt: skip
    return result.version


def register_without_artifacts(uri: str) -> str:
    """A version registered from a copy of the champion's artifacts, then the copy deleted."""
    from streamfn.bench.challengers import register_without_artifacts as gone

    return gone(uri, SEED_MODELS[CHALLENGED])


def register_raising(uri: str) -> str:
    """A version with the champion's signature whose predict raises."""
    import mlflow
    from mlflow import MlflowClient

    from streamfn.data.training import ensure_experiment

    client = MlflowClient(uri, uri)
    name = SEED_MODELS[CHALLENGED]
    signature = mlflow.models.get_model_info(f"models:/{name}@champion").signature
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=ensure_experiment(client, uri)):
        info = mlflow.pyfunc.log_model(
            name="raising", python_model=str(RAISING_MODEL), signature=signature,
            pip_requirements=["mlflow"],
        )  # fmt: skip
    return str(mlflow.register_model(f"models:/{info.model_id}", name).version)


def set_challenger(uri: str, version: str | None) -> None:
    """Point the challenger alias at `version`, or remove it (None)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri, uri)
    name = SEED_MODELS[CHALLENGED]
    if version is None:
        if "challenger" in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, "challenger")
    else:
        client.set_registered_model_alias(name, "challenger", version)
