"""Factories for records, bodies, API Gateway events and pollers."""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streamfn.core.connections import SyncClient
from streamfn.core.crash import Checkpoint, no_crash
from streamfn.core.settings import Settings
from streamfn.ingest.openapi import EXAMPLE_BODY
from streamfn.poller.invoke import Invoker
from streamfn.poller.loop import Poller
from streamfn.stream.redis.source import RedisSource

SEED_EXAMPLE = {"data": [{"Designation": 1.5, "Resource_Allocation": 1.7, "Sleep_Hours": 7}]}
# The seed's example record in canonical spelling (what ingest puts in the stream).
SEED = [{"Designation": 1.5, "Resource Allocation": 1.7, "Sleep Hours": 7}]


def full_record(**overrides: Any) -> dict[str, Any]:
    """A record with every feature: the full example of the API docs, with overrides."""
    return {**EXAMPLE_BODY["data"][1], **overrides}


def http_api_v2_event(
    body: bytes, path: str = "/predict_stream", query: str = "model=svm", **headers: str
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for a POST."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "api.example.com", **headers},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:07:00:00 +0000",
            "timeEpoch": 1795676400000,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def rest_api_v1_event(
    body: bytes, path: str = "/predict_stream", model: str = "svm", method: str = "POST"
) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) event."""
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "api.example.com"},
        "multiValueHeaders": {
            "Content-Type": ["application/json"],
            "Host": ["api.example.com"],
        },
        "queryStringParameters": {"model": model},
        "multiValueQueryStringParameters": {"model": [model]},
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": "req-2",
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }


def body(*records: dict[str, Any]) -> bytes:
    """A request body holding these records."""
    return orjson.dumps({"data": list(records)})


def sqs_record(
    message_id: str,
    model: str,
    data: list[dict[str, Any]],
    received_at: int = 0,
    receive_count: int = 1,
) -> dict[str, Any]:
    """One record of the SQS-shaped batch event the infer function takes."""
    entry = {
        "model": model,
        "data": data,
        "received_at": received_at or int(message_id.split("-")[0]),
    }
    return {
        "messageId": message_id,
        "body": orjson.dumps(entry).decode(),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": message_id.split("-")[0],
        },
        "eventSource": "redis:streams",
        "eventSourceARN": "redis://127.0.0.1:6379/0/mlops_stream",
    }


def batch_event(*records: dict[str, Any]) -> dict[str, Any]:
    """The batch event holding these records."""
    return {"Records": list(records)}


def redis_poller(
    settings: Settings, client: SyncClient, invoke: Invoker, consumer: str = "test",
    stopping: threading.Event | None = None, checkpoint: Checkpoint = no_crash,
    partitions: Sequence[int] | None = None,
) -> Poller:  # fmt: skip
    """A poller of the Redis Stream's partitions (all, or those given) through `client`."""
    source = RedisSource(settings, client, consumer, partitions, checkpoint)
    return Poller(source, invoke, stopping)


def estimated_cell(key: str) -> bool:
    """A window field holding a sum of calibrated probabilities (`e:`, a shadow's `s:<v>:e:` or
    `s:<v>:ke:`), in millionths of a row."""
    return key.startswith("e:") or ":e:" in key or ":ke:" in key


def assert_same_counts(found: Mapping[str, int], expected: Mapping[str, int], rows: int) -> None:
    """Window counts equal, but the expected confusion cells (sums of calibrated probabilities
    over `rows` rows, in millionths): an ONNX graph is served only when each probability is the
    native model's within parity's 1e-5, ten millionths a row at most."""
    slack = 10 * rows
    cells = {k for k in {*found, *expected} if estimated_cell(k)}
    assert {k: n for k, n in found.items() if k not in cells} == {
        k: n for k, n in expected.items() if k not in cells
    }
    apart = {k: found.get(k, 0) - expected.get(k, 0) for k in cells}
    assert all(abs(d) <= slack for d in apart.values()), apart
