"""The infer handler on the events Lambda's own mappings send, as `sam local generate-event` makes
them (tests/infer/events): each writes its row once, and a failure names the record as the
source knows it (a Kinesis failure names the sequence number, never an empty id)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.infer import handler
from tests.conftest import rows_in

pytestmark = pytest.mark.slow

EVENTS = Path(__file__).parent / "events"


def sam_event(name: str) -> dict[str, Any]:
    return orjson.loads((EVENTS / f"{name}.json").read_bytes())


@pytest.fixture
def ctx(infer_settings: Settings, s3: Any) -> handler.InferContext:
    return handler.build_context(infer_settings)


@pytest.mark.parametrize(
    ("name", "message_id"),
    [
        ("sqs_receive_message", "19dd0b57-b21e-4ac1-bd88-01bbb068cb78"),
        ("kinesis_get_records", "shardId-000000000000:"
         "49545115243490985018280067714973144582180062593244200961"),
    ],
)  # fmt: skip
def test_a_generated_event_writes_its_row_once(
    ctx: handler.InferContext, s3: Any, redis_url: str, name: str, message_id: str
) -> None:
    event = sam_event(name)
    assert handler.handle(event, ctx) == {"batchItemFailures": []}
    assert handler.handle(event, ctx) == {"batchItemFailures": []}  # delivered again
    assert rows_in(s3) == {(message_id, "0"): 1}
    state = orjson.loads(redis.Redis.from_url(redis_url).get(Keys().result(message_id)) or b"{}")
    assert (state["status"], state["model"], state["received_at"]) == ("done", "svm", 1764756000000)


def test_a_kinesis_poison_record_is_named_by_its_sequence_number(
    ctx: handler.InferContext, s3: Any
) -> None:
    event = sam_event("kinesis_get_records")
    poison = copy.deepcopy(event["Records"][0])
    poison["kinesis"]["sequenceNumber"] = "49545115243490985018280067714973144582180062593244200962"
    poison["eventID"] = "shardId-000000000000:" + poison["kinesis"]["sequenceNumber"]
    poison["kinesis"]["data"] = base64.b64encode(b"not json").decode()
    event["Records"].append(poison)
    failures = handler.handle(event, ctx)["batchItemFailures"]
    assert failures == [{"itemIdentifier": poison["kinesis"]["sequenceNumber"]}]
    assert len(rows_in(s3)) == 1
