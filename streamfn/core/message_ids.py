"""Message ids of every source: a Redis stream id (`<ms>-<seq>`), an SQS message id (a UUID) or a
Kinesis record's `<shard id>:<sequence number>`; and an id as an object's name carries it."""

from __future__ import annotations

import re

# What GET /predictions takes as an SQS or Kinesis message id.
NATIVE_ID = re.compile(r"[A-Za-z0-9:-]{1,160}")
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def key_part(message_id: str) -> str:
    """A message id as an object's name starts with it (a Kinesis `shard:sequence` loses its
    colon)."""
    return _UNSAFE_KEY_CHARS.sub("_", message_id)[:64]
