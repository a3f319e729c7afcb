"""Per-message results kept in Redis for GET /predictions: compact JSON with a TTL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypedDict

import orjson
from redis import Redis
from redis.client import Pipeline

from streamfn.constants import result_key

Status = Literal["pending", "done", "failed", "dead_letter"]


class Result(TypedDict, total=False):
    """What the infer side records of one message; labels are derived when read."""

    status: Status
    model: str
    model_version: str | None
    predictions: list[int] | None
    object: str | None
    error: str | None
    written_at: int | None  # epoch ms when its object was written (not shown by the API)


def stage(pipe: Pipeline, message_id: str, result: Result, ttl_s: int) -> None:
    """Queue the SET of one message's result (compact: no null fields) on a pipeline."""
    compact: dict[str, Any] = {k: v for k, v in result.items() if v is not None}
    pipe.set(result_key(message_id), orjson.dumps(compact), ex=ttl_s)


def save(client: Redis, results: Iterable[tuple[str, Result]], ttl_s: int) -> None:
    """Store the results of several messages in one round trip, each expiring after ttl_s."""
    with client.pipeline(transaction=False) as pipe:
        for message_id, result in results:
            stage(pipe, message_id, result, ttl_s)
        pipe.execute()


def error_of(raw: bytes | None) -> str | None:
    """The error recorded in a stored result, if any."""
    return orjson.loads(raw).get("error") if raw else None


def done(
    model: str, version: str, predictions: list[int], uri: str, written_at: int | None = None
) -> Result:
    """The result of a message whose rows are in `uri` (written at `written_at`, epoch ms)."""
    return {"status": "done", "model": model, "model_version": version,
            "predictions": predictions, "object": uri, "written_at": written_at}  # fmt: skip


def failed(model: str | None, error: str) -> Result:
    """The result of a message that failed (it stays pending in the stream until dead-lettered)."""
    return {"status": "failed", "model": model, "error": error}


def dead_letter(model: str, error: str) -> Result:
    """The result of a message moved to the dead-letter stream."""
    return {"status": "dead_letter", "model": model, "error": error}
