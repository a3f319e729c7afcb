"""One stream of a Redis Stream's partitions, read by one consumer of the group.

New entries come with XREADGROUP; entries idle in any consumer's pending list longer than
CLAIM_IDLE_MS are reclaimed with XAUTOCLAIM, and the delivery count (from XPENDING) is the try
counter. Acknowledged entries are trimmed (XTRIM MINID) so the stream's memory stays bounded, and
their bytes are taken off the count ingest holds against MAX_LAG_BYTES; dead letters are kept
DLQ_RETENTION_S (XTRIM MINID on the dead-letter stream, whose ids are their dead-letter times).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError, ResponseError

from streamfn.core import message_state, metrics, stream_ids
from streamfn.core.connections import SyncClient, text
from streamfn.core.keys import dlq_key
from streamfn.core.settings import Settings
from streamfn.stream import events
from streamfn.stream.heartbeat import beating

log = logging.getLogger(__name__)

TRIM_EVERY_S = 1.0
REST_S = 1.0  # how long a partition whose master failed is left alone (a failover takes seconds)

# Acknowledge entries and take their data's bytes off the stream's count (MAX_LAG_BYTES), for
# those XACK really acknowledged (an entry acknowledged twice is counted off once).
# KEYS: the stream, its bytes count. ARGV: group, then id and bytes of each entry.
_ACK = """
local freed = 0
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    freed = freed + tonumber(ARGV[i + 1])
  end
end
if freed > 0 and redis.call('DECRBY', KEYS[2], freed) <= 0 then redis.call('DEL', KEYS[2]) end
return freed
"""
# With nothing pending and nothing left to read in the group, the stream holds no byte to count:
# a count that drifted (entries acknowledged by hand, or before the count existed) starts again.
# KEYS: the stream, its bytes count. ARGV: group.
_SETTLE_BYTES = """
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return 0 end
for _, group in ipairs(groups) do
  local fields = {}
  for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
  if fields['name'] == ARGV[1] and fields['pending'] == 0 and fields['lag'] == 0 then
    return redis.call('DEL', KEYS[2])
  end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as delivered to this consumer."""

    id: str
    fields: dict[bytes, bytes]
    deliveries: int


def body_of(fields: dict[bytes, bytes]) -> str:
    """The JSON of an entry with `data` embedded as is (a poison entry's body fails alone)."""
    entry: dict[str, Any] = {
        k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()
    }
    if b"data" in fields:
        entry["data"] = orjson.Fragment(fields[b"data"])
    if entry.get("received_at", "").isdigit():
        entry["received_at"] = int(entry["received_at"])
    return orjson.dumps(entry).decode(errors="replace")


class Partition:
    """One consumer of the group on one stream: STREAM_KEY, or one partition of it."""

    def __init__(self, settings: Settings, client: SyncClient, consumer: str, stream: str) -> None:
        self.settings = settings
        self.redis = client
        self.consumer = consumer
        self.stream = stream
        self.keys = settings.keys
        self.dlq = dlq_key(self.stream)
        self.lag_bytes = self.keys.lag_bytes(self.stream)
        self.group = settings.CONSUMER_GROUP
        self.arn = f"{settings.REDIS_URL.rsplit('@', 1)[-1]}/{self.stream}"
        self.lag: int | None = None  # the group's lag at the last trim, where Redis knows it
        self.needs_group = True  # at the start, and after an error (Redis may have lost it)
        self._next_claim = 0.0
        self._next_trim = 0.0
        self._rest_until = 0.0
        self._ack = client.register_script(_ACK)
        self._settle_bytes = client.register_script(_SETTLE_BYTES)

    def rest(self, error: RedisError) -> None:
        """Leave this partition alone for REST_S: its master failed (a failover may be under
        way), and the poller's other partitions go on meanwhile."""
        self._rest_until = time.monotonic() + REST_S
        self.needs_group = True
        metrics.POLLER_BACKOFFS.inc()
        log.warning("partition failed; resting it", extra={
            "stream": self.stream, "error": str(error), "retry_in_s": REST_S})  # fmt: skip

    def resting(self) -> bool:
        """Whether this partition rests after a failure."""
        return time.monotonic() < self._rest_until

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self.needs_group = False

    def read(self, count: int, block_ms: int | None) -> list[Entry]:
        """Up to `count` new entries; wait up to block_ms for the first (None: do not wait)."""
        reply = self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        if not reply:
            return []
        return [Entry(i.decode(), f, 1) for i, f in reply[0][1]]

    def claim_idle(self, count: int) -> list[Entry]:
        """Entries idle over CLAIM_IDLE_MS in any consumer's pending list, with delivery counts."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        idle_ms = self.settings.CLAIM_IDLE_MS
        self._next_claim = now + min(1.0, idle_ms / 4000)
        reply = self.redis.xautoclaim(
            self.stream, self.group, self.consumer,
            min_idle_time=idle_ms, start_id="0-0", count=count,
        )  # fmt: skip
        # Redis 7 answers [cursor, entries, deleted ids], 6.2 [cursor, entries]: use only these.
        claimed = [(i.decode(), f) for i, f in reply[1] if f]
        if not claimed:
            return []
        counts = self.delivery_counts([i for i, _ in claimed])
        metrics.POLLER_RECLAIMED.inc(len(claimed))
        return [Entry(i, f, counts.get(i, 1)) for i, f in claimed]

    def delivery_counts(self, ids: Sequence[str]) -> dict[str, int]:
        """How many times each of this consumer's pending entries has been delivered."""
        pending = self.redis.xpending_range(
            self.stream, self.group,
            min=min(ids, key=stream_ids.order), max=max(ids, key=stream_ids.order),
            count=len(ids) * 2, consumername=self.consumer,
        )  # fmt: skip
        return {p["message_id"].decode(): int(p["times_delivered"]) for p in pending}

    def event_of(self, entries: Sequence[Entry]) -> dict[str, Any]:
        """The SQS-shaped batch event of these entries."""
        return events.sqs_shaped(
            ((e.id, body_of(e.fields), e.deliveries) for e in entries), self.arn
        )

    @contextmanager
    def holding(self, ids: list[str]) -> Iterator[None]:
        """Keep the batch's entries from looking idle while the invocation runs.

        A cold start (models loading) or a slow invoke can outlast CLAIM_IDLE_MS; without this,
        another poller would reclaim entries this one is still working on. Every quarter of
        CLAIM_IDLE_MS, XCLAIM ... JUSTID resets their idle time (and not their delivery count).
        Only entries idle for an eighth of it are touched, so one that another poller took over
        while this process was frozen is not taken back.
        """
        every_ms = max(self.settings.CLAIM_IDLE_MS // 4, 1)

        def beat() -> None:
            self.redis.xclaim(
                self.stream, self.group, self.consumer, every_ms // 2, ids, justid=True
            )

        with beating(every_ms / 1000, beat, "batch"):
            yield

    def leave(self) -> None:
        """Leave the group when stopping, unless this consumer still holds entries (those stay
        for another poller to claim). Names are per process, so a consumer that never left would
        count as a silent poller for good."""
        try:
            held = self.redis.xpending_range(
                self.stream, self.group, "-", "+", 1, consumername=self.consumer
            )
            if not held:
                self.redis.xgroup_delconsumer(self.stream, self.group, self.consumer)
        except RedisError as error:  # Redis down at the stop: the name stays, harmless
            log.info("consumer kept in the group", extra={"error": str(error)})

    def ack(self, entries: Sequence[Entry]) -> None:
        """Acknowledge entries (rows written, or dead-lettered); their bytes leave the count."""
        if entries:
            sizes = [part for e in entries for part in (e.id, len(e.fields.get(b"data", b"")))]
            self._ack(keys=[self.stream, self.lag_bytes], args=[self.group, *sizes])

    def dead_letter(self, entries: Sequence[Entry]) -> None:
        """Copy entries to the DLQ with their last error, record it, then acknowledge them; the
        DLQ keeps what was dead-lettered in the last DLQ_RETENTION_S."""
        errors = self.redis.mget([self.keys.result(e.id) for e in entries])
        failed_at = str(time.time_ns() // 1_000_000)
        kept_from = self.dlq_cutoff()
        ttl_s = self.settings.RESULT_TTL_S
        with self.redis.pipeline(transaction=False) as pipe:
            for entry, raw in zip(entries, errors, strict=True):
                error = message_state.error_of(raw) or "unknown error"
                extra = {
                    b"error": error,
                    b"deliveries": str(entry.deliveries),
                    b"failed_at": failed_at,
                    b"message_id": entry.id,  # not in the stream's fields: which message this was
                }
                pipe.xadd(self.dlq, {**entry.fields, **extra}, minid=kept_from, approximate=False)
                model = entry.fields.get(b"model", b"").decode(errors="replace")
                state = message_state.dead_letter(model, error)
                message_state.stage(pipe, entry.id, state, ttl_s, self.keys.result)
            pipe.execute()
        self.ack(entries)
        for entry in entries:
            log.warning(
                "dead-lettered", extra={"message_id": entry.id, "deliveries": entry.deliveries}
            )

    def dlq_cutoff(self) -> str:
        """The oldest dead-letter id kept: DLQ_RETENTION_S ago (an id is its dead-letter time)."""
        return f"{time.time_ns() // 1_000_000 - self.settings.DLQ_RETENTION_S * 1000}-0"

    def maybe_trim(self) -> None:
        """Trim entries every group has acknowledged (XTRIM MINID), and dead letters past their
        retention; note the group's lag."""
        now = time.monotonic()
        if now < self._next_trim:
            return
        self._next_trim = now + TRIM_EVERY_S
        keep_from: list[str] = []
        lag = None
        for group in self.redis.xinfo_groups(self.stream):
            pending = self.redis.xpending(self.stream, group["name"])
            oldest = pending["min"] if pending["pending"] else group["last-delivered-id"]
            keep_from.append(text(oldest))
            if text(group["name"]) == self.group:
                lag = group.get("lag")
        if keep_from:
            self.redis.xtrim(self.stream, minid=min(keep_from, key=stream_ids.order),
                             approximate=False)  # fmt: skip
        # The DLQ may see no new entry for days: its retention is kept here too.
        # (Exactly: dead letters are few, and `~` would keep a whole node of them.)
        self.redis.xtrim(self.dlq, minid=self.dlq_cutoff(), approximate=False)
        self._settle_bytes(keys=[self.stream, self.lag_bytes], args=[self.group])
        if lag is not None:
            # Redis can overstate the lag after an AOF reload or on a promoted replica
            # (redis/redis#10569); what is left in the stream after the trim bounds it.
            self.lag = min(lag, self.redis.xlen(self.stream))
