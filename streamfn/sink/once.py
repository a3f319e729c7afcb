"""Row objects written once under their layout's key, whatever batch their messages come back in.

The protocol, per object:
1. intent: each message's state records the object's address and the version whose rows
   it holds (status pending);
2. PUT: the whole object, in one request (it exists whole or not at all);
3. done: the handler records each message's result (and then the poller acknowledges it).
A message delivered again finds its state. Done: its rows are written. Pending, and the object
it names exists: its rows are written too (the crash came between 2 and 3), whatever batch the
message is in now. Pending and no object: the crash came between 1 and 2, so it is written anew.

Every kind of row object (streamfn.sink.layout) goes through the same protocol, in the format
SINK_FORMAT names. The challenger's shadow rows keep their states under keys of their own
(`Keys.shadow`), so a message's champion rows and shadow rows are each written once,
independently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from streamfn.core import message_state
from streamfn.core.clock import now_ms
from streamfn.core.connections import SyncClient
from streamfn.core.crash import Checkpoint, no_crash
from streamfn.core.message_state import KeyOf
from streamfn.models.schemas import ModelSchema
from streamfn.sink.bucket import Bucket
from streamfn.sink.formats.base import Format
from streamfn.sink.layout import SHADOW, object_key
from streamfn.sink.rows import Row


class Found(NamedTuple):
    """A message whose rows are in the bucket already."""

    uri: str  # their object
    done: bool  # False: the crash came between the PUT and the done record
    version: str | None  # the version that wrote them, when its state says


@dataclass(frozen=True)
class Written:
    """An object this call wrote: its address and when it landed (epoch ms)."""

    uri: str
    written_at: int


class OnceWriter:
    """Steps 1 and 2 of the protocol, and the check a redelivered message goes through."""

    def __init__(
        self, bucket: Bucket, redis: SyncClient, ttl_s: int, key: KeyOf, format: Format,
        checkpoint: Checkpoint = no_crash,
    ) -> None:  # fmt: skip
        self.bucket = bucket
        self.redis = redis
        self.ttl_s = ttl_s
        self.key = key  # where each message's state is kept
        self.format = format
        self.checkpoint = checkpoint

    def already_written(self, message_ids: Sequence[str]) -> dict[str, Found]:
        """Each message whose rows are in the bucket already: its object, whether it was also
        recorded done, and the version that wrote them."""
        if not message_ids:
            return {}
        stored = self.redis.mget([self.key(i) for i in message_ids])
        written: dict[str, Found] = {}
        for message_id, raw in zip(message_ids, stored, strict=True):
            state = message_state.decode(raw)
            uri = state.get("object")
            if not uri:
                continue
            version = state.get("model_version")
            if state.get("status") == "done":
                written[message_id] = Found(uri, True, version)
            elif self.bucket.exists(self.bucket.key_of(uri)):
                written[message_id] = Found(uri, False, version)
        return written

    def encode(
        self, kind: str, schema: ModelSchema, rows: Sequence[Row], proba_labels: Sequence[str] = (),
        reasons: int = 0,
    ) -> bytes:  # fmt: skip
        """The object of these rows, in SINK_FORMAT (with `reasons` reason codes a row)."""
        return self.format.encode(schema, rows, proba_labels, kind == SHADOW, reasons)

    def write(
        self, kind: str, api_name: str, message_ids: Sequence[str], body: bytes, at_ms: int,
        metadata: Mapping[str, str] | None = None, version: str | None = None,
    ) -> Written:  # fmt: skip
        """Record the intent for every message (naming the `version` whose rows they are), then
        PUT the object of day `at_ms` (with the user metadata given:
        streamfn.sink.rows.object_metadata)."""
        day = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).date()
        key = object_key(kind, api_name, day, message_ids, self.format.suffix)
        uri = self.bucket.url(key)
        intent = message_state.pending(api_name, uri, version)
        message_state.save(self.redis, [(i, intent) for i in message_ids], self.ttl_s, self.key)
        self.checkpoint("after_intent")
        self.bucket.put(key, body, self.format.content_type, metadata)
        self.checkpoint("after_put")
        return Written(uri, now_ms())
