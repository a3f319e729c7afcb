"""Settings: the documented defaults, and a bad value fails naming its variable."""

from __future__ import annotations

import pytest

from streamfn.core.keys import dlq_key
from streamfn.core.settings import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_documented_ones() -> None:
    s = load_settings()
    assert s.REDIS_URL == "redis://localhost:6379/0"
    assert (s.STREAM_KEY, s.CONSUMER_GROUP, s.streams, dlq_key(s.STREAM_KEY)) == (
        "mlops_stream",
        "workers",
        ["mlops_stream"],
        "mlops_stream:dlq",
    )
    assert (s.STREAM_PARTITIONS, s.REDIS_CLUSTER, s.INGEST_WAIT_REPLICAS) == (1, False, 0)
    assert (s.MLFLOW_TRACKING_URI, s.MODEL_ALIAS, s.MODEL_REFRESH_S) == (
        "http://localhost:5001",
        "champion",
        30,
    )
    assert (s.MAX_RECORDS, s.MAX_BODY_BYTES, s.MAX_LAG) == (10_000, 5 * 1024 * 1024, 10_000)
    assert (s.BATCH_SIZE, s.BATCH_WINDOW_MS, s.CLAIM_IDLE_MS, s.MAX_DELIVERIES) == (
        256,
        100,
        30_000,
        5,
    )
    assert (s.PREDICTIONS_BUCKET, s.RESULT_TTL_S, s.INGEST_URL) == (
        "predictions",
        3600,
        "http://localhost:8800",
    )
    assert s.INGEST_API_KEY is None
    assert s.INFER_FUNCTION_NAME is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "64")
    monkeypatch.setenv("INGEST_API_KEY", "k")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000/")
    s = load_settings()
    assert s.BATCH_SIZE == 64
    assert s.INGEST_API_KEY is not None
    assert s.INGEST_API_KEY.get_secret_value() == "k"
    assert s.AWS_ENDPOINT_URL_S3 == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_URL", "localhost:6379"),
        ("BATCH_SIZE", "0"),
        ("BATCH_SIZE", "many"),
        ("MAX_RECORDS", "-1"),
        ("MAX_BODY_BYTES", "1.5"),
        ("MAX_LAG", ""),
        ("BATCH_WINDOW_MS", "-5"),
        ("MODEL_REFRESH_S", "soon"),
        ("CLAIM_IDLE_MS", "0"),
        ("MAX_DELIVERIES", "0"),
        ("RESULT_TTL_S", "forever"),
        ("INGEST_URL", "localhost:8800"),
        ("AWS_ENDPOINT_URL_S3", "minio:9000"),
        ("PREDICTIONS_BUCKET", "x"),
        ("STREAM_KEY", ""),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"^invalid configuration: {variable}="):
        load_settings()


def test_empty_optional_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_API_KEY", "")
    monkeypatch.setenv("INFER_FUNCTION_NAME", "")
    s = load_settings()
    assert s.INGEST_API_KEY is None
    assert s.INFER_FUNCTION_NAME is None


def test_models_maps_api_names_to_registered_names_in_order() -> None:
    assert load_settings().models == {"svm": "SVC", "knn": "Knn_Classifier",
                                      "lightgbm": "LightGBM_Classifier"}  # fmt: skip
    found = load_settings(MODELS=" wine = Wine_Classifier ,svm=SVC").models
    assert list(found.items()) == [("wine", "Wine_Classifier"), ("svm", "SVC")]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("svm", "is not api_name=RegisteredName"),
        ("svm=", "is not api_name=RegisteredName"),
        ("Wine=W", "lower-case"),
        ("a b=W", "lower-case"),
        ("svm=SVC,svm=Other", "given twice"),
    ],
)
def test_a_bad_models_value_fails_at_start_naming_it(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"MODELS=.*{says}"):
        load_settings(MODELS=value)


@pytest.mark.parametrize(
    ("backend", "missing"), [("kinesis", "KINESIS_STREAM"), ("sqs", "SQS_QUEUE_URL")]
)
def test_a_kinesis_or_sqs_backend_needs_its_stream_or_queue(backend: str, missing: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(STREAM_BACKEND=backend)
    assert str(error.value).startswith(f"invalid configuration: STREAM_BACKEND={backend} needs")
    assert missing in str(error.value)
    assert "Value error" not in str(error.value)
    named = load_settings(STREAM_BACKEND=backend, **{missing: "x"})
    assert (named.STREAM_BACKEND, getattr(named, missing)) == (backend, "x")


def test_partitions_name_hash_tagged_streams() -> None:
    s = load_settings(STREAM_PARTITIONS=3)
    assert s.streams == ["mlops_stream:{0}", "mlops_stream:{1}", "mlops_stream:{2}"]
    assert dlq_key(s.streams[1]) == "mlops_stream:{1}:dlq"  # the same slot as its stream
    with pytest.raises(ConfigError, match="STREAM_PARTITIONS=0"):
        load_settings(STREAM_PARTITIONS=0)


def test_every_variable_is_in_the_configuration_page() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in page]
    assert not missing, f"docs/configuration.md lacks {missing}"
