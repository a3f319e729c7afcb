"""The warm model cache against real registries: load once, follow the alias, survive outages."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)

from streamfn.core.settings import SEED_MODELS
from streamfn.data import training
from streamfn.models import cache as model_cache
from streamfn.models import loading as model_loading
from streamfn.models.cache import ModelCache
from streamfn.models.loaded import LoadedModel, ModelUnavailableError, frame_of
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import CATEGORICAL, FEATURE_NAMES, NUMERIC
from tests.conftest import TcpProxy, free_port

SEED = seed_schema()

pytestmark = pytest.mark.slow

REFRESH_S = 30.0
KNN = SEED_MODELS["knn"]
HTTP_SETTINGS = (MLFLOW_HTTP_REQUEST_MAX_RETRIES.name, MLFLOW_HTTP_REQUEST_TIMEOUT.name)


class FakeClock:
    """A monotonic clock the test moves by hand, so refresh intervals need no sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def default_http_settings() -> Iterator[None]:
    """Start without MLflow HTTP settings and restore the session's: the cache sets them."""
    saved = {name: os.environ.pop(name, None) for name in HTTP_SETTINGS}
    yield
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


@pytest.fixture
def knn_registry(tmp_path: Path) -> str:
    """A private SQLite registry holding KNN version 1 as `champion`, free to be changed."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    training.train(uri, "champion", models=("knn",))
    return uri


def new_version(uri: str, name: str = KNN) -> str:
    """Register another version of the model from the champion's artifacts."""
    client = MlflowClient(uri)
    current = client.get_model_version_by_alias(name, "champion")
    # MLflow 3 sources are logged models (`models:/m-...`); a server wants their id as well.
    model_id = current.source.removeprefix("models:/")
    created = client.create_model_version(
        name, current.source, run_id=current.run_id, model_id=model_id
    )
    return str(created.version)


def partial_records(count: int, seed: int = 7) -> list[dict[str, object]]:
    """Client-like records with a few numeric features each and no category at all."""
    rng = np.random.default_rng(seed)
    records: list[dict[str, object]] = [
        {"Designation": 1.5, "Resource Allocation": 1.7, "Sleep Hours": 7}
    ]
    while len(records) < count:
        records.append(
            {
                "Designation": int(rng.integers(0, 6)),
                "Resource Allocation": float(rng.uniform(1, 10)),
                "Mental Fatigue Score": float(rng.uniform(0, 10)),
            }
        )
    return records


def test_frame_of_has_the_signature_columns_and_nan_for_absent_features() -> None:
    records = [{"Gender": "Male", "Team Size": 4}, {"Designation": 1.5, "Sleep Hours": 7}]
    frame = frame_of(SEED, records)
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert all(frame[name].dtype == "float64" for name in NUMERIC)
    assert frame.loc[0, "Team Size"] == 4.0
    assert frame.loc[1, "Sleep Hours"] == 7.0
    assert frame.loc[0, "Gender"] == "Male"
    # A None would reach the one-hot encoder as an unknown category instead of being imputed.
    assert not frame.map(lambda value: value is None).to_numpy().any()
    assert frame[list(CATEGORICAL)].iloc[1].isna().all()


def test_three_models_load_once_each_and_predict_partial_records(sqlite_registry: str) -> None:
    clock = FakeClock()
    cache = ModelCache(sqlite_registry, "champion", REFRESH_S, SEED_MODELS, clock=clock)
    client = MlflowClient(sqlite_registry)
    frame = frame_of(SEED, partial_records(256))
    for _ in range(20):
        for api_name in SEED_MODELS:
            model = cache.get(api_name)
            assert isinstance(model, LoadedModel)
            assert model.registered_name == SEED_MODELS[api_name]
            predicted = model.predict(frame)
            assert len(predicted) == 256
            assert set(predicted) <= {0, 1, 2}
        clock.advance(REFRESH_S / 10)  # 20 rounds span two refresh intervals
    assert cache.loads == 3
    expected = {
        api: str(client.get_model_version_by_alias(name, "champion").version)
        for api, name in SEED_MODELS.items()
    }
    assert cache.served_versions() == expected


def test_absent_categories_are_imputed_like_in_training(sqlite_registry: str) -> None:
    cache = ModelCache(sqlite_registry, "champion", REFRESH_S, SEED_MODELS, clock=FakeClock())
    records = partial_records(64)
    for api_name in SEED_MODELS:
        model = cache.get(api_name)
        pipeline = model.model.get_raw_model()
        modes = pipeline.named_steps["prepare"].named_transformers_["cat"]["impute"].statistics_
        filled = [{**record, **dict(zip(CATEGORICAL, modes, strict=True))} for record in records]
        absent = model.predict(frame_of(SEED, records))
        assert absent == model.predict(frame_of(SEED, filled)), api_name


def test_alias_move_is_served_after_the_refresh_interval_with_one_load(
    knn_registry: str,
) -> None:
    clock = FakeClock()
    cache = ModelCache(knn_registry, "champion", REFRESH_S, SEED_MODELS, clock=clock)
    first = cache.get("knn")
    assert (first.version, cache.loads) == ("1", 1)
    client = MlflowClient(knn_registry)
    version = new_version(knn_registry)
    client.set_registered_model_alias(KNN, "champion", version)

    clock.advance(REFRESH_S - 0.5)
    assert cache.get("knn") is first
    clock.advance(0.5)
    assert cache.get("knn") is first  # served at once; the refresh runs beside the batch
    cache.settle()
    moved = cache.get("knn")
    assert (moved.version, cache.loads) == (version, 2)
    assert cache.served_versions() == {"knn": version}
    assert set(moved.predict(frame_of(SEED, partial_records(8)))) <= {0, 1, 2}

    # Moved back at once: not seen before the next interval, and nothing else is loaded.
    client.set_registered_model_alias(KNN, "champion", "1")
    for _ in range(10):
        assert cache.get("knn") is moved
    assert cache.loads == 2


def test_absent_alias_falls_back_to_the_latest_version(
    knn_registry: str, caplog: pytest.LogCaptureFixture
) -> None:
    latest = new_version(knn_registry)  # `champion` stays on version 1
    clock = FakeClock()
    cache = ModelCache(knn_registry, "staging", REFRESH_S, SEED_MODELS, clock=clock)
    with caplog.at_level(logging.WARNING, logger=model_cache.__name__):
        assert cache.get("knn").version == latest == "2"
    assert any(r.message.startswith("alias absent") for r in caplog.records)

    MlflowClient(knn_registry).set_registered_model_alias(KNN, "staging", "1")
    clock.advance(REFRESH_S)
    cache.get("knn")
    cache.settle()
    assert cache.get("knn").version == "1"
    assert cache.loads == 2


def test_cached_version_serves_while_mlflow_is_unreachable(
    mlflow_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    training.train(mlflow_server, "champion", models=("knn",))
    proxy = TcpProxy(int(mlflow_server.rsplit(":", 1)[1]))
    clock = FakeClock()
    cache = ModelCache(proxy.uri, "champion", REFRESH_S, SEED_MODELS, clock=clock)
    warm = cache.get("knn")
    assert warm.version == "1"
    # A server reports an absent alias as a client error, not as an outage: still a fallback.
    assert ModelCache(proxy.uri, "staging", REFRESH_S, SEED_MODELS).get("knn").version == "1"
    proxy.stop()

    def failed_refreshes() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.message.startswith("model refresh failed")]

    with caplog.at_level(logging.WARNING, logger=model_cache.__name__):
        for _ in range(2):
            clock.advance(REFRESH_S)
            started = time.perf_counter()
            for _ in range(20):
                assert cache.get("knn") is warm
            assert time.perf_counter() - started < 0.5  # never waits for the dead registry
            cache.settle()
        assert len(failed_refreshes()) == 2  # one attempt per interval, not one per call
    record = failed_refreshes()[0]
    assert (record.model, record.version, record.retry_in_s) == ("knn", "1", REFRESH_S)
    assert "Error" in record.error

    # MLflow back, with a new champion: picked up at the next interval.
    version = new_version(mlflow_server)
    MlflowClient(mlflow_server).set_registered_model_alias(KNN, "champion", version)
    proxy.start()
    clock.advance(REFRESH_S)
    cache.get("knn")
    cache.settle()
    assert cache.get("knn").version == version
    assert cache.loads == 2
    proxy.stop()


def test_cold_start_with_mlflow_down_fails_fast() -> None:
    cache = ModelCache(f"http://127.0.0.1:{free_port()}", "champion", REFRESH_S, SEED_MODELS)
    for _ in range(2):  # nothing cached: every call tries, and fails, quickly
        started = time.perf_counter()
        with pytest.raises(ModelUnavailableError, match="svm"):
            cache.get("svm")
        assert time.perf_counter() - started < 2.0
    assert (cache.loads, cache.served_versions()) == (0, {})


def test_cold_start_with_a_hung_mlflow_fails_after_the_request_timeout() -> None:
    # A listener that never accepts: the kernel completes the handshake, no answer ever comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        cache = ModelCache(f"http://127.0.0.1:{port}", "champion", REFRESH_S, SEED_MODELS)
        started = time.perf_counter()
        with pytest.raises(ModelUnavailableError):
            cache.get("knn")
        # One immediate retry: two timeouts at most.
        assert time.perf_counter() - started < 2 * model_loading.HTTP_TIMEOUT_S + 3


def test_operator_http_settings_are_kept() -> None:
    os.environ[MLFLOW_HTTP_REQUEST_TIMEOUT.name] = "17"
    ModelCache(f"http://127.0.0.1:{free_port()}", "champion", REFRESH_S, SEED_MODELS)
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 17
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == model_loading.HTTP_MAX_RETRIES


def test_unknown_model_names_the_valid_ones() -> None:
    cache = ModelCache(f"http://127.0.0.1:{free_port()}", "champion", REFRESH_S, SEED_MODELS)
    with pytest.raises(ModelUnavailableError, match="svm, knn, lightgbm"):
        cache.get("xgboost")
