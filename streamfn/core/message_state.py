"""The state of each accepted message, kept in Redis for GET /predictions: compact JSON, a TTL.

The infer function records it (pending with the object it is writing, then done or failed), the
poller records dead letters, and ingest reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypedDict

import orjson
from redis.client import Pipeline

from streamfn.core import stream_ids
from streamfn.core.connections import AsyncClient, SyncClient

Status = Literal["pending", "done", "failed", "dead_letter"]


class MessageState(TypedDict, total=False):
    """What is known of one message; labels are derived when read."""

    status: Status
    model: str
    model_version: str | None
    predictions: list[Any] | None
    object: str | None
    error: str | None
    written_at: int | None  # epoch ms when its object was written (not shown by the API)
    received_at: int | None  # epoch ms it was accepted: the window its labels count in
    reasons: list[list[dict[str, Any]]]  # per record, its reason codes (when explained)


KeyOf = Callable[[str], str]  # message id -> the Redis key of its state


def stage(pipe: Pipeline, message_id: str, state: MessageState, ttl_s: int, key: KeyOf) -> None:
    """Queue the SET of one message's state (compact: no null fields) on a pipeline."""
    compact: dict[str, Any] = {k: v for k, v in state.items() if v is not None}
    pipe.set(key(message_id), orjson.dumps(compact), ex=ttl_s)


def save(
    client: SyncClient,
    states: Iterable[tuple[str, MessageState]],
    ttl_s: int,
    key: KeyOf,
) -> None:
    """Store the states of several messages in one round trip, each expiring after ttl_s (under
    their result keys, or the shadow's)."""
    with client.pipeline(transaction=False) as pipe:
        for message_id, state in states:
            stage(pipe, message_id, state, ttl_s, key)
        pipe.execute()


async def queued(
    client: AsyncClient, streams: list[str], message_ids: list[str]
) -> list[str | None]:
    """The model of each message still in its partition's stream (accepted, no result recorded
    yet), else None."""
    ids = [i for i in message_ids if stream_ids.is_stream_id(i)]
    async with client.pipeline(transaction=False) as pipe:
        for message_id in ids:
            stream = streams[stream_ids.partition_of(message_id, len(streams)) or 0]
            pipe.xrange(stream, message_id, message_id, count=1)
        entries = dict(zip(ids, await pipe.execute(), strict=True)) if ids else {}
    return [
        found[0][1].get(b"model", b"").decode() if (found := entries.get(i)) else None
        for i in message_ids
    ]


def decode(raw: bytes | None) -> MessageState:
    """A stored state ({} when there is none)."""
    return orjson.loads(raw) if raw else {}


def error_of(raw: bytes | None) -> str | None:
    """The error recorded in a stored state, if any."""
    return decode(raw).get("error")


def pending(model: str, uri: str, version: str | None = None) -> MessageState:
    """The intent recorded before a message's object is written: where it will be, and which
    version's rows it holds (a redelivery then goes back to that version)."""
    return {"status": "pending", "model": model, "object": uri, "model_version": version}


def done(
    model: str, version: str, predictions: list[Any], uri: str, written_at: int | None = None,
    received_at: int | None = None, reasons: list[list[tuple[str, float]]] | None = None,
) -> MessageState:  # fmt: skip
    """The state of a message whose rows are in `uri` (written at `written_at`, epoch ms), with
    its records' reason codes when it was explained."""
    state: MessageState = {"status": "done", "model": model, "model_version": version,
                           "predictions": predictions, "object": uri, "written_at": written_at,
                           "received_at": received_at}  # fmt: skip
    if reasons is not None:
        state["reasons"] = [[{"input": name, "contribution": round(value, 6)}
                             for name, value in record] for record in reasons]  # fmt: skip
    return state


def failed(model: str | None, error: str) -> MessageState:
    """The state of a message that failed (it stays pending in the stream until dead-lettered)."""
    return {"status": "failed", "model": model, "error": error}


def dead_letter(model: str, error: str) -> MessageState:
    """The state of a message moved to the dead-letter stream."""
    return {"status": "dead_letter", "model": model, "error": error}
