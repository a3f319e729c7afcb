"""The challengers the bench scores in shadow: a working one with more trees than the champion,
and a broken one (its artifacts deleted after registration), each under an alias of its own."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from streamfn.core.settings import SEED_MODELS
from streamfn.data import training
from streamfn.models.registry import open_registry

MODEL = "lightgbm"
WORKING = "challenger"
BROKEN = "bench-broken-challenger"
# More trees than the champion's 60: a candidate that costs more to predict.
PARAMS: dict[str, object] = {"n_estimators": 120}


def working(registry: str) -> str:
    """The LightGBM challenger of the registry, trained once; its version."""
    found = open_registry(registry).alias_target(SEED_MODELS[MODEL], WORKING)
    if found is not None:
        return found
    [result] = training.train(registry, WORKING, (MODEL,), params=PARAMS, compete=False)
    return result.version


def register_without_artifacts(registry: str, name: str) -> str:
    """A version of `name` registered from a copy of its champion's artifacts, the copy then
    deleted: a version whose artifacts are gone. Its version."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(registry, registry)
    champion = client.get_model_version_by_alias(name, "champion")
    copy = Path(tempfile.mkdtemp(prefix="streamfn-gone-"))
    source = client.get_model_version_download_uri(name, champion.version)
    mlflow.artifacts.download_artifacts(source, dst_path=str(copy), tracking_uri=registry)
    created = client.create_model_version(name, copy.as_uri(), run_id=champion.run_id)
    shutil.rmtree(copy)
    return str(created.version)


def broken(registry: str) -> str:
    """The broken challenger of the registry (alias BROKEN), registered once; its version."""
    from mlflow import MlflowClient

    name = SEED_MODELS[MODEL]
    found = open_registry(registry).alias_target(name, BROKEN)
    if found is not None:
        return found
    version = register_without_artifacts(registry, name)
    MlflowClient(registry, registry).set_registered_model_alias(name, BROKEN, version)
    return version
