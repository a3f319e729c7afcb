"""The infer function invoked directly with hand-built batch events: rows, results, isolation."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import redis

from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.infer import handler
from tests.conftest import bucket_rows
from tests.factories import SEED, batch_event, full_record, sqs_record

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(infer_settings: Settings, s3: Any) -> handler.InferContext:
    return handler.build_context(infer_settings)


def stored(redis_url: str, message_id: str) -> dict[str, Any]:
    raw = redis.Redis.from_url(redis_url).get(Keys().result(message_id))
    assert raw is not None
    return orjson.loads(raw)


def test_batch_writes_one_object_per_model_and_stores_results(
    ctx: handler.InferContext, s3: Any, redis_url: str
) -> None:
    event = batch_event(
        sqs_record("1000-0", "svm", [full_record(), {**SEED[0], "Employee ID": "e-2"}]),
        sqs_record("1001-0", "svm", SEED),
        sqs_record("1002-0", "knn", [full_record()]),
    )
    assert handler.handle(event, ctx) == {"batchItemFailures": []}
    listed = s3.list_objects_v2(Bucket="predictions", Prefix="predictions/")["Contents"]
    keys = sorted(o["Key"] for o in listed)
    assert len(keys) == 2
    assert keys[0].startswith("predictions/model=knn/date=")
    assert keys[1].startswith("predictions/model=svm/date=")
    rows = bucket_rows(s3)
    assert [(r["message_id"], r["record_index"], r["model"]) for r in rows] == [
        ("1002-0", "0", "knn"),
        ("1000-0", "0", "svm"),
        ("1000-0", "1", "svm"),
        ("1001-0", "0", "svm"),
    ]
    by_id = {(r["message_id"], r["record_index"]): r for r in rows}
    partial = by_id[("1000-0", "1")]
    assert partial["registered_model"] == "SVC"
    assert partial["model_version"] == "1"
    assert partial["Employee ID"] == "e-2"
    assert partial["Designation"] == "1.5"
    assert set(partial["imputed"].split("|")) == {
        "Gender",
        "Company Type",
        "WFH Setup Available",
        "Mental Fatigue Score",
        "Work Hours per Week",
        "Work-Life Balance Score",
        "Manager Support Score",
        "Deadline Pressure Score",
        "Team Size",
        "Recognition Frequency",
    }
    assert by_id[("1002-0", "0")]["imputed"] == ""
    for row in rows:
        assert row["prediction"] in {"0", "1", "2"}
        assert row["prediction_label"] == ["Low", "Medium", "High"][int(row["prediction"])]
    result = stored(redis_url, "1000-0")
    assert result["status"] == "done"
    assert result["model_version"] == "1"
    assert result["predictions"] == [
        int(by_id[("1000-0", "0")]["prediction"]),
        int(partial["prediction"]),
    ]
    assert result["object"] == f"s3://predictions/{keys[1]}"
    # When its object landed: after acceptance (1000 ms), at the time of this call.
    assert abs(result["written_at"] - time.time() * 1000) < 60_000


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"messageId": "2000-0", "body": "{not json"}, "not JSON"),
        (sqs_record("2000-0", "xgboost", SEED), "unknown model"),
        (sqs_record("2000-0", "svm", []), "non-empty list"),
        (
            {"messageId": "2000-0", "body": orjson.dumps({"model": "svm", "data": SEED}).decode()},
            "received_at",
        ),
    ],
)
def test_a_poison_message_fails_alone(
    ctx: handler.InferContext, s3: Any, redis_url: str, record: dict[str, Any], error: str
) -> None:
    event = batch_event(
        sqs_record("1999-0", "svm", SEED), record, sqs_record("2001-0", "lightgbm", SEED)
    )
    assert handler.handle(event, ctx) == {"batchItemFailures": [{"itemIdentifier": "2000-0"}]}
    assert sorted(r["message_id"] for r in bucket_rows(s3)) == ["1999-0", "2001-0"]
    failed = stored(redis_url, "2000-0")
    assert failed["status"] == "failed"
    assert error in failed["error"]


def test_redelivery_in_another_batch_never_writes_a_row_twice(
    ctx: handler.InferContext, s3: Any, redis_url: str
) -> None:
    a, b, c = (sqs_record(f"{3000 + i}-0", "svm", SEED) for i in range(3))
    assert handler.handle(batch_event(a, b), ctx)["batchItemFailures"] == []
    first = stored(redis_url, "3000-0")
    assert handler.handle(batch_event(a, c), ctx)["batchItemFailures"] == []
    assert handler.handle(batch_event(b, a), ctx)["batchItemFailures"] == []
    assert sorted(r["message_id"] for r in bucket_rows(s3)) == ["3000-0", "3001-0", "3002-0"]
    # A redelivery did not write, and leaves the record of the write it found as it was.
    assert stored(redis_url, "3000-0") == first


def test_an_intent_without_its_object_is_written_again(
    ctx: handler.InferContext, s3: Any, redis_url: str
) -> None:
    # A crash after recording the intent but before the PUT leaves a pending result and no object.
    intent = {
        "status": "pending",
        "model": "svm",
        "object": "s3://predictions/predictions/model=svm/lost.csv",
    }
    redis.Redis.from_url(redis_url).set(Keys().result("4000-0"), orjson.dumps(intent))
    answer = handler.handle(batch_event(sqs_record("4000-0", "svm", SEED)), ctx)
    assert answer["batchItemFailures"] == []
    assert [r["message_id"] for r in bucket_rows(s3)] == ["4000-0"]
    assert stored(redis_url, "4000-0")["status"] == "done"


def test_s3_down_fails_the_whole_batch_and_writes_no_result(
    infer_settings: Settings, redis_url: str
) -> None:
    from tests.conftest import free_port

    down = infer_settings.model_copy(
        update={"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}
    )
    ctx = handler.build_context(down)
    with pytest.raises(handler.DependencyError, match="svm"):
        handler.handle(batch_event(sqs_record("5000-0", "svm", SEED)), ctx)
    state = redis.Redis.from_url(redis_url).get(Keys().result("5000-0"))
    assert state is None or orjson.loads(state)["status"] == "pending"


def test_registry_down_on_a_cold_start_fails_the_batch(make_settings: Any, s3: Any) -> None:
    from tests.conftest import free_port

    ctx = handler.build_context(
        make_settings(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    )
    with pytest.raises(handler.DependencyError, match="knn"):
        handler.handle(batch_event(sqs_record("6000-0", "knn", SEED)), ctx)
    assert "Contents" not in s3.list_objects_v2(Bucket="predictions")
