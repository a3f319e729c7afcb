"""The real stacks some suites share: one MLflow server per session, moto's S3 server and a
pipeline of child processes per test (the fault suite's, also driven by the console's page test).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from streamfn.core.settings import SEED_MODELS
from streamfn.local import services
from streamfn.local.stack import Stack, free_port
from tests import challengers
from tests.faults.parts import MotoS3, Registry
from tests.faults.pipeline import BUCKET, Pipeline


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real MLflow server (one worker, SQLite, local artifacts) with the models trained once."""
    from streamfn.data import training  # heavy imports only when the suite runs

    directory = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = Stack(directory)
    try:
        server.start(services.mlflow(port, directory))
        results = training.train(uri, "champion")
        yield Registry(uri, port, {r.api_name: r.version for r in results})
    finally:
        server.stop()


@pytest.fixture(scope="session")
def challenger_version(registry: Registry) -> str:
    """A genuinely different lightgbm version, registered once (the alias is per case)."""
    version = challengers.train_challenger(registry.uri)
    challengers.set_challenger(registry.uri, None)
    return version


@pytest.fixture(scope="session")
def good_challenger_version(registry: Registry) -> str:
    """A lightgbm version close to the champion (its recipe, a few more trees), registered once:
    its canary holds."""
    version = challengers.train_challenger(registry.uri, challengers.GOOD)
    challengers.set_challenger(registry.uri, None)
    return version


@contextmanager
def challenging(registry: Registry, version: str, pipeline: Pipeline) -> Iterator[str]:
    """The challenger alias on `version` for a case, no canary recorded on it by an earlier
    case; afterwards both aliases as they were."""
    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    name, champion = SEED_MODELS[challengers.CHALLENGED], registry.champions["lightgbm"]
    if "streamfn.canary" in client.get_model_version(name, version).tags:
        client.delete_model_version_tag(name, version, "streamfn.canary")
    challengers.set_challenger(registry.uri, version)
    pipeline.challenged.add(challengers.CHALLENGED)
    try:
        yield version
    finally:  # later cases share the registry
        challengers.set_challenger(registry.uri, None)
        client.set_registered_model_alias(name, "champion", champion)


@pytest.fixture
def challenged(registry: Registry, challenger_version: str, pipeline: Pipeline) -> Iterator[str]:
    """The (weaker) challenger alias set for this case; afterwards as it was."""
    with challenging(registry, challenger_version, pipeline) as version:
        yield version


@pytest.fixture
def good_challenged(
    registry: Registry, good_challenger_version: str, pipeline: Pipeline
) -> Iterator[str]:
    """The good challenger alias set for this case; afterwards as it was."""
    with challenging(registry, good_challenger_version, pipeline) as version:
        yield version


@pytest.fixture
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server on a private port, emptied, with the predictions bucket."""
    server = MotoS3()
    server.start()
    # Every moto in this process shares one state: start each case with an empty S3.
    httpx.post(f"{server.endpoint}/moto-api/reset").raise_for_status()
    server.client.create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def pipeline(tmp_path: Path, registry: Registry, moto_s3: MotoS3) -> Iterator[Pipeline]:
    """A pipeline of this case's own; every child is stopped at the end, whatever happened."""
    built = Pipeline(tmp_path, registry, moto_s3)
    try:
        built.boot()
        yield built
    finally:
        built.close()
