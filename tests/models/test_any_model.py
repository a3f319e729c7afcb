"""Any registered model, configured in MODELS: its schema, validation, rows and probabilities."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.settings import Settings
from streamfn.data import samplers
from streamfn.infer import handler
from streamfn.ingest.validation import Validator
from streamfn.local.stack import free_port
from streamfn.models.registry import open_registry
from tests.conftest import bucket_rows
from tests.factories import redis_poller
from tests.models.conftest import WINE, WINE_LABELS, Brought

pytestmark = pytest.mark.slow
LEADING = ["message_id", "record_index", "model", "registered_model", "model_version",
           "received_at", "predicted_at", "imputed", "Employee ID"]  # fmt: skip


@pytest.fixture
def settings_for(
    make_settings: Callable[..., Settings], brought: Brought
) -> Callable[..., Settings]:
    return lambda **overrides: make_settings(
        MODELS=brought.models, MODEL_FLAVORS=brought.flavours, **overrides
    )


@pytest.fixture
def api(settings_for: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for())) as client:
        yield client


def post(client: TestClient, model: str, records: list[dict[str, Any]]) -> Any:
    return client.post(f"/predict_stream?model={model}", content=orjson.dumps({"data": records}),
                       headers={"content-type": "application/json"})  # fmt: skip


def drain(settings: Settings) -> None:
    """One poller, in burst mode, with the infer function in process."""
    ctx = handler.build_context(settings)
    poller = redis_poller(settings, redis.Redis.from_url(settings.REDIS_URL),
                          lambda event: handler.handle(event, ctx), "test")  # fmt: skip
    poller.run(burst=True)


def rows_of(s3: Any, model: str) -> list[dict[str, str]]:
    return [r for r in bucket_rows(s3) if r["model"] == model]


def header_of(s3: Any, model: str) -> list[str]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="predictions")["Contents"]]
    key = next(k for k in keys if f"model={model}/" in k)
    body = s3.get_object(Bucket="predictions", Key=key)["Body"].read().decode()
    return body.split("\r\n", 1)[0].split(",")


def wine_records(brought: Brought, count: int = 3) -> list[dict[str, Any]]:
    return brought.wine.head(count).to_dict(orient="records")


def test_a_wine_classifier_serves_end_to_end_with_its_own_columns(
    api: TestClient, settings_for: Callable[..., Settings], brought: Brought, s3: Any
) -> None:
    answer = post(api, "wine", [{**r, "Employee ID": f"w-{i}"} for i, r in
                                enumerate(wine_records(brought))])  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert post(api, "svm", [{"Designation": 2}]).status_code == 202
    drain(settings_for())
    names = list(brought.wine.columns)
    assert header_of(s3, "wine") == [*LEADING, *names, "prediction", "prediction_label"]
    rows = rows_of(s3, "wine")
    assert [r["Employee ID"] for r in rows] == ["w-0", "w-1", "w-2"]
    assert {r["registered_model"] for r in rows} == {WINE}
    assert {r["prediction"] for r in rows} <= {"0", "1", "2"}
    assert all(r["prediction_label"] == WINE_LABELS[r["prediction"]] for r in rows)
    assert float(rows[0]["alcohol"]) == brought.wine.iloc[0]["alcohol"]
    state = api.get(answer.json()["status_url"]).json()
    assert state["status"] == "done"
    assert state["labels"] == [WINE_LABELS[str(p)] for p in state["predictions"]]
    # The seed's model keeps the seed's columns, beside it.
    assert header_of(s3, "svm")[5:7] == ["prediction", "prediction_label"]


@pytest.mark.parametrize(
    ("change", "field", "type_"),
    [
        ({"alcohol": "strong"}, "alcohol", "number_type"),
        ({"alcohol": 100.0}, "alcohol", "out_of_range"),
        ({"colour_intensity": 5.0}, "colour_intensity", "extra_forbidden"),
        ({"proline": None}, "proline", "missing"),
    ],
)
def test_a_wine_record_that_does_not_fit_is_refused_naming_the_field(
    api: TestClient, brought: Brought, change: dict[str, Any], field: str, type_: str
) -> None:
    record = {**wine_records(brought, 1)[0], **change}
    if field == "colour_intensity":
        record.pop("color_intensity")
    answer = post(api, "wine", [record])
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert (errors[0]["loc"], errors[0]["type"]) == (["body", "data", 0, field], type_)
    if type_ == "extra_forbidden":
        assert "did you mean 'color_intensity'" in errors[0]["msg"]
        # ... and the column the typo stood for is required: that is said too.
        assert (errors[1]["loc"][3], errors[1]["type"]) == ("color_intensity", "missing")
    else:
        assert len(errors) == 1


def test_a_regressor_writes_float_predictions_and_no_label(
    api: TestClient, settings_for: Callable[..., Settings], brought: Brought, s3: Any
) -> None:
    records = brought.diabetes.head(4).to_dict(orient="records")
    assert post(api, "diabetes", records).status_code == 202
    drain(settings_for())
    rows = rows_of(s3, "diabetes")
    assert len(rows) == 4
    assert all(r["prediction_label"] == "" for r in rows)
    values = [float(r["prediction"]) for r in rows]
    assert all(math.isfinite(v) for v in values)
    assert len(set(values)) == 4  # numbers, not classes


def test_a_version_without_a_signature_is_refused_and_the_others_serve(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="streamfn.ingest.schema_cache"):
        answers = [post(api, "unsigned", [{"alcohol": 13.0}]) for _ in range(3)]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "30"
        assert "without a signature" in answer.json()["detail"]
    refusals = [r for r in caplog.records if r.getMessage() == "model refused"]
    assert len(refusals) == 1  # one clear line, not one per request
    assert post(api, "knn", [{"Designation": 2}]).status_code == 202


def test_mlflow_down_at_ingest_start_validates_with_the_kept_schema(
    api: TestClient, settings_for: Callable[..., Settings], brought: Brought
) -> None:
    record = wine_records(brought, 1)[0]
    assert post(api, "wine", [record]).status_code == 202  # read from the registry, kept
    down = settings_for(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(down)) as restarted:
        assert post(restarted, "wine", [record]).status_code == 202
        refused = post(restarted, "wine", [{**record, "alcohol": 100.0}])
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["type"] == "out_of_range"
        never_read = post(restarted, "diabetes", [{"age": 0.01}])
        assert never_read.status_code == 503
        assert "cannot be read" in never_read.json()["detail"]


def test_probabilities_are_columns_per_class_that_sum_to_one(
    settings_for: Callable[..., Settings], brought: Brought, s3: Any
) -> None:
    settings = settings_for(OUTPUT_PROBABILITIES=True)
    with TestClient(create_app(settings)) as client:
        assert post(client, "wine", wine_records(brought, 5)).status_code == 202
        assert post(client, "lightgbm", [{"Designation": 1}, {"Sleep Hours": 5}]).status_code == 202
        assert post(client, "svm", [{"Designation": 1}]).status_code == 202
    drain(settings)
    wine = [f"proba_{label}" for label in WINE_LABELS.values()]
    assert header_of(s3, "wine")[-3:] == wine
    assert header_of(s3, "lightgbm")[-3:] == ["proba_Low", "proba_Medium", "proba_High"]
    assert not any(c.startswith("proba_") for c in header_of(s3, "svm"))  # no predict_proba
    for model, columns in (("wine", wine), ("lightgbm", header_of(s3, "lightgbm")[-3:])):
        for row in rows_of(s3, model):
            assert sum(float(row[c]) for c in columns) == pytest.approx(1.0)


def test_models_lists_every_configured_model_with_its_schema(
    api: TestClient, brought: Brought
) -> None:
    listed = {m["model"]: m for m in api.get("/models").json()["models"]}
    assert list(listed) == ["svm", "knn", "lightgbm", "wine", "diabetes", "unsigned"]
    assert [c["name"] for c in listed["wine"]["columns"]] == list(brought.wine.columns)
    assert listed["wine"]["labels"] == WINE_LABELS
    assert listed["diabetes"]["output"] == "number"
    assert listed["svm"]["columns"][0] == {"name": "Gender", "kind": "string", "required": False,
                                            "low": None, "high": None,
                                            "categories": ["Male", "Female"]}  # fmt: skip
    assert "without a signature" in listed["unsigned"]["error"]


def test_the_producer_draws_records_that_fit_from_the_reference_profile(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for()
    drawn = samplers.for_models(settings, ["wine", "diabetes"], seed=3)
    registry = open_registry(settings.MLFLOW_TRACKING_URI)
    for model in ("wine", "diabetes"):
        name = settings.models[model]
        schema = registry.schema(model, name, registry.alias_version(name, "champion").version)
        records = drawn[model].records(500)
        assert len(Validator(schema).validate_records(records, 500)) == 500
        assert len({r["Employee ID"] for r in records}) == 500
