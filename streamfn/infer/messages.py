"""The messages of a batch: each event record decoded into a model and its canonical records."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson

from streamfn.stream.events import EventRecord


class MessageError(ValueError):
    """A message that can never be processed as it is (a poison message)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded stream entry: its id, model, canonical records and receive time."""

    message_id: str
    model: str
    records: list[dict[str, Any]]
    received_at: int


def decode(record: EventRecord, models: Collection[str]) -> Message:
    """The message in one event record, or MessageError saying what is wrong with it."""
    try:
        entry = orjson.loads(record.body)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise MessageError(f"body is not JSON: {error}") from None
    if not isinstance(entry, dict):
        raise MessageError("body is not a JSON object")
    model, data, received_at = entry.get("model"), entry.get("data"), entry.get("received_at")
    if model not in models:
        raise MessageError(f"unknown model {model!r}; expected one of {', '.join(models)}")
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
        raise MessageError("data is not a non-empty list of records")
    if not isinstance(received_at, int):
        raise MessageError("received_at is not epoch milliseconds")
    return Message(record.message_id, model, data, received_at)
