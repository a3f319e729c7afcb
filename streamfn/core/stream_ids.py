"""Redis stream ids (`<milliseconds>-<sequence>`): recognise them, read them, order them."""

from __future__ import annotations

import re

_STREAM_ID = re.compile(r"(\d{1,20})-(\d{1,20})")


def parse(text: str) -> tuple[int, int] | None:
    """(milliseconds, sequence) of a stream id, or None when `text` is not one."""
    match = _STREAM_ID.fullmatch(text)
    return None if match is None else (int(match[1]), int(match[2]))


def is_stream_id(text: str) -> bool:
    """Whether `text` has the shape of a stream id."""
    return _STREAM_ID.fullmatch(text) is not None


def order(stream_id: str) -> tuple[int, int]:
    """The sort key of a stream id: "9-0" comes before "10-0"; ValueError if it is not one."""
    parsed = parse(stream_id)
    if parsed is None:
        raise ValueError(f"{stream_id!r} is not a stream id")
    return parsed


def order_any(item_id: str) -> tuple[int, int, int, str]:
    """A sort key for ids of any source: stream ids first, by number; other ids after, by text."""
    parsed = parse(item_id)
    return (1, 0, 0, item_id) if parsed is None else (0, *parsed, item_id)


def partition_of(message_id: str, partitions: int) -> int | None:
    """The partition whose stream holds a stream id: its sequence number modulo the partitions
    (ingest's append script picks ids so). None for an id that is not a stream id."""
    parsed = parse(message_id)
    return None if parsed is None else parsed[1] % partitions


def millis(stream_id: str) -> int:
    """The epoch milliseconds a stream id was created at (its first part)."""
    return order(stream_id)[0]
