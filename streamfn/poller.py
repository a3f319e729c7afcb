"""The poller: read batches with XREADGROUP, invoke the infer function, acknowledge what it wrote.

`run()` → `poll_once()` → `process_batch()`. Entries left pending (a failed message, a batch that
failed whole, a poller that died) are reclaimed with XAUTOCLAIM once idle for CLAIM_IDLE_MS; the
delivery count is the try counter, and past MAX_DELIVERIES a failing entry goes to the dead-letter
stream, then is acknowledged (in that order: a crash between leaves a duplicate, never a loss).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from streamfn import metrics, results
from streamfn.batch import BatchResponse
from streamfn.config import Settings
from streamfn.constants import result_key

log = logging.getLogger(__name__)

Invoker = Callable[[dict[str, Any]], BatchResponse]
TRIM_EVERY_S = 1.0
BLOCK_MS = 1000  # how long an idle read waits; also how quickly a stop request is noticed


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


class Poller:
    """One consumer of the group; several pollers share the work."""

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        invoke: Invoker,
        consumer: str | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.s = settings
        self.r = client
        self.invoke = invoke
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.stopping = stopping or threading.Event()  # set: finish the batch in flight, stop
        self.source = f"{settings.REDIS_URL.rsplit('@', 1)[-1]}/{settings.STREAM_KEY}"
        self._next_claim = 0.0
        self._next_trim = 0.0
        self._needs_group = True

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            self.r.xgroup_create(self.s.STREAM_KEY, self.s.CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def run(self, burst: bool = False) -> int:
        """Poll until stopped (or, in burst mode, until nothing is left); return entries handled."""
        retrying = Retrying(
            retry=retry_if_exception_type((RedisError, InvokeError)),
            wait=wait_exponential_jitter(initial=0.2, max=30),
            stop=lambda _: self.stopping.is_set(),
            sleep=self.stopping.wait,  # a stop request cuts a backoff short
            before_sleep=self._log_backoff,
            reraise=True,
        )
        block_ms = None if burst else BLOCK_MS
        handled = 0
        log.info("poller started", extra={"consumer": self.consumer, "stream": self.source})
        while not self.stopping.is_set():
            try:
                count = retrying(self._poll_guarded, block_ms)
            except (RedisError, InvokeError):
                break  # stopping while a dependency is down
            handled += count
            if burst and count == 0:
                break
        log.info("poller stopped", extra={"consumer": self.consumer, "handled": handled})
        return handled

    def _poll_guarded(self, block_ms: int | None) -> int:
        if self._needs_group:
            self.ensure_group()
            self._needs_group = False
        try:
            return self.poll_once(block_ms)
        except RedisError:
            self._needs_group = True  # a restarted Redis may have lost the group
            raise

    @staticmethod
    def _log_backoff(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        metrics.POLLER_BACKOFFS.inc()
        log.warning(
            "poll failed; backing off",
            extra={
                "error": str(error),
                "attempt": state.attempt_number,
                "retry_in_s": round(pause, 2),
            },
        )

    def poll_once(self, block_ms: int | None = BLOCK_MS) -> int:
        """Reclaim idle entries, top the batch up with new ones, process it; return its size."""
        entries = self.claim_idle()
        room = self.s.BATCH_SIZE - len(entries)
        if room > 0:
            # With reclaimed entries in hand, do not wait for new ones.
            entries += self.read_batch(room, None if entries else block_ms)
        if entries:
            self.process_batch(entries)
        self.maybe_trim()
        return len(entries)

    def read_batch(self, limit: int, block_ms: int | None) -> list[Entry]:
        """Up to `limit` new entries, waiting at most BATCH_WINDOW_MS after the first."""
        entries = self._read(limit, block_ms)
        deadline = time.monotonic() + self.s.BATCH_WINDOW_MS / 1000
        while entries and len(entries) < limit:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = self._read(limit - len(entries), left_ms)
            if not more:
                break
            entries += more
        return entries

    def _read(self, count: int, block_ms: int | None) -> list[Entry]:
        reply = self.r.xreadgroup(
            self.s.CONSUMER_GROUP,
            self.consumer,
            {self.s.STREAM_KEY: ">"},
            count=count,
            block=block_ms,
        )
        if not reply:
            return []
        return [Entry(i.decode(), f, 1) for i, f in reply[0][1]]

    def claim_idle(self) -> list[Entry]:
        """Entries idle over CLAIM_IDLE_MS in any consumer's pending list, with delivery counts."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + min(1.0, self.s.CLAIM_IDLE_MS / 4000)
        reply = self.r.xautoclaim(
            self.s.STREAM_KEY,
            self.s.CONSUMER_GROUP,
            self.consumer,
            min_idle_time=self.s.CLAIM_IDLE_MS,
            start_id="0-0",
            count=self.s.BATCH_SIZE,
        )
        # Redis 7 answers [cursor, entries, deleted ids], 6.2 [cursor, entries]: use only these.
        claimed = [(i.decode(), f) for i, f in reply[1] if f]
        if not claimed:
            return []
        counts = self.delivery_counts([i for i, _ in claimed])
        metrics.POLLER_RECLAIMED.inc(len(claimed))
        return [Entry(i, f, counts.get(i, 1)) for i, f in claimed]

    def delivery_counts(self, ids: Sequence[str]) -> dict[str, int]:
        """How many times each of this consumer's pending entries has been delivered."""
        pending = self.r.xpending_range(
            self.s.STREAM_KEY,
            self.s.CONSUMER_GROUP,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) * 2,
            consumername=self.consumer,
        )
        return {p["message_id"].decode(): int(p["times_delivered"]) for p in pending}

    def event_of(self, entries: Sequence[Entry]) -> dict[str, Any]:
        """The SQS-shaped batch event of SPEC section 5."""
        return {
            "Records": [
                {
                    "messageId": e.id,
                    "body": body_of(e.fields),
                    "attributes": {
                        "ApproximateReceiveCount": str(e.deliveries),
                        "SentTimestamp": e.id.split("-", 1)[0],
                    },
                    "eventSource": "redis:streams",
                    "eventSourceARN": self.source,
                }
                for e in entries
            ]
        }

    def process_batch(self, entries: Sequence[Entry]) -> None:
        """Invoke infer on the batch; ack what it wrote; dead-letter what failed too often."""
        started = time.perf_counter()
        try:
            with self.holding([e.id for e in entries]):
                response = self.invoke(self.event_of(entries))
        except Exception as error:
            metrics.POLLER_BATCHES.labels("failed").inc()
            raise InvokeError(f"batch of {len(entries)} failed whole: {error}") from error
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [e.id for e in entries if e.id not in failed]
        dead = [e for e in entries if e.id in failed and e.deliveries >= self.s.MAX_DELIVERIES]
        if dead:
            self.dead_letter(dead)
        if done:
            self.r.xack(self.s.STREAM_KEY, self.s.CONSUMER_GROUP, *done)
        metrics.POLLER_BATCHES.labels("ok").inc()
        metrics.POLLER_ENTRIES.labels("acked").inc(len(done))
        metrics.POLLER_ENTRIES.labels("failed").inc(len(failed) - len(dead))
        metrics.POLLER_BATCH_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "batch",
            extra={
                "consumer": self.consumer,
                "entries": len(entries),
                "acked": len(done),
                "failed": len(failed),
                "dead_lettered": len(dead),
                "first_id": entries[0].id,
                "last_id": entries[-1].id,
            },
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
        every_ms = max(self.s.CLAIM_IDLE_MS // 4, 1)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every_ms / 1000):
                try:
                    self.r.xclaim(self.s.STREAM_KEY, self.s.CONSUMER_GROUP, self.consumer,
                                  every_ms // 2, ids, justid=True)  # fmt: skip
                except RedisError as error:  # the batch's own calls will meet the outage
                    log.warning("could not hold the batch", extra={"error": str(error)})

        heart = threading.Thread(target=beat, name="hold-batch", daemon=True)
        heart.start()
        try:
            yield
        finally:
            done.set()
            heart.join()

    def dead_letter(self, entries: Sequence[Entry]) -> None:
        """Copy entries to the DLQ with their last error, record it, then acknowledge them."""
        errors = self.r.mget([result_key(e.id) for e in entries])
        failed_at = str(time.time_ns() // 1_000_000)
        with self.r.pipeline(transaction=False) as pipe:
            for entry, raw in zip(entries, errors, strict=True):
                error = results.error_of(raw) or "unknown error"
                extra = {
                    b"error": error,
                    b"deliveries": str(entry.deliveries),
                    b"failed_at": failed_at,
                    b"message_id": entry.id,  # beyond the spec: which message this was
                }
                pipe.xadd(self.s.dlq_key, {**entry.fields, **extra})
                model = entry.fields.get(b"model", b"").decode(errors="replace")
                dead = results.dead_letter(model, error)
                results.stage(pipe, entry.id, dead, self.s.RESULT_TTL_S)
            pipe.xack(self.s.STREAM_KEY, self.s.CONSUMER_GROUP, *(e.id for e in entries))
            pipe.execute()
        metrics.POLLER_ENTRIES.labels("dead_letter").inc(len(entries))
        for entry in entries:
            log.warning(
                "dead-lettered", extra={"message_id": entry.id, "deliveries": entry.deliveries}
            )

    def maybe_trim(self) -> None:
        """Trim entries every group has acknowledged (XTRIM MINID); update the lag gauge."""
        now = time.monotonic()
        if now < self._next_trim:
            return
        self._next_trim = now + TRIM_EVERY_S
        keep_from: list[str] = []
        for group in self.r.xinfo_groups(self.s.STREAM_KEY):
            pending = self.r.xpending(self.s.STREAM_KEY, group["name"])
            oldest = pending["min"] if pending["pending"] else group["last-delivered-id"]
            keep_from.append(_text(oldest))
            if _text(group["name"]) == self.s.CONSUMER_GROUP and group.get("lag") is not None:
                metrics.POLLER_LAG.set(group["lag"])
        if keep_from:
            self.r.xtrim(self.s.STREAM_KEY, minid=min(keep_from, key=_id_key), approximate=False)


class InvokeError(RuntimeError):
    """The infer function failed the whole batch (a dependency is down, or the call failed)."""


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
