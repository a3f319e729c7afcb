"""The poller: read a batch, invoke the infer function, acknowledge what it wrote.

`run()` → `poll_once()` → `process_batch()`. Entries left pending (a failed message, a batch that
failed whole, a poller that died) are reclaimed once idle for CLAIM_IDLE_MS; the delivery count is
the try counter, and past MAX_DELIVERIES a failing entry goes to the dead-letter stream, then is
acknowledged (in that order: a crash between leaves a duplicate, never a loss).

Batches adapt to the load. The first entry is waited for; then the poller takes what is waiting
at once. When the last batch was a single entry (light traffic), that is all: the entry goes out
alone, at once. When it held more (entries arrived while it was in flight), the poller lingers
a millisecond at a time while entries keep arriving, for at most BATCH_WINDOW_MS, so that under
load batches grow and their fixed cost is shared.

With STREAM_PARTITIONS > 1 a poller reads its partitions in turn, one XREADGROUP each (a Redis
Cluster refuses one command over several slots): the first with entries gets the batch, and the
next pass starts at the partition after it. When none has any, it waits on one of them for
IDLE_BLOCK_MS, so an entry on another waits that long at most. A partition lingers P times as
long for more entries (it gets 1/P of them), and one whose master fails rests while the others
go on.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from redis.exceptions import RedisError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from streamfn.core import crash, metrics
from streamfn.core.connections import SyncClient
from streamfn.core.settings import Settings
from streamfn.poller.invoke import InvokeError, Invoker
from streamfn.poller.sources.redis import Entry, RedisSource

log = logging.getLogger(__name__)
T = TypeVar("T")

BLOCK_MS = 1000  # how long an idle read waits; also how quickly a stop request is noticed
# Under load, how long to wait for more entries before sending a batch that could grow. (Redis
# times blocking reads out at its own tick, 100 ms: the poller waits on its side.)
LINGER_S = 0.001
IDLE_BLOCK_MS = 20  # with several partitions: how long an idle read waits on one of them


def consumer_name() -> str:
    """A consumer name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Poller:
    """One consumer of the group on each of its partitions; several pollers share the work."""

    def __init__(
        self,
        settings: Settings,
        sources: RedisSource | Sequence[RedisSource],
        invoke: Invoker,
        stopping: threading.Event | None = None,
        checkpoint: crash.Checkpoint = crash.no_crash,
    ) -> None:
        self.settings = settings
        self.sources = [sources] if isinstance(sources, RedisSource) else list(sources)
        self.invoke = invoke
        self.stopping = stopping or threading.Event()  # set: finish the batch in flight, stop
        self.checkpoint = checkpoint
        self.last_poll: float | None = None  # monotonic time of the last poll that went through
        self.last_batch = 0  # entries of the last batch: more than one means load
        self._turn = 0  # the partition the next pass starts at

    @property
    def source(self) -> RedisSource:
        """The first partition's source (the only one with STREAM_PARTITIONS=1)."""
        return self.sources[0]

    @property
    def consumer(self) -> str:
        """This poller's consumer name in the group."""
        return self.source.consumer

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
        streams = [source.stream for source in self.sources]
        log.info("poller started", extra={"consumer": self.consumer, "streams": streams})
        while not self.stopping.is_set():
            try:
                count = retrying(self._poll_guarded, block_ms)
            except (RedisError, InvokeError):
                break  # stopping while a dependency is down
            handled += count
            if burst and count == 0:
                break
        for source in self.sources:
            source.leave()
        log.info("poller stopped", extra={"consumer": self.consumer, "handled": handled})
        return handled

    def _poll_guarded(self, block_ms: int | None) -> int:
        for source in self.sources:
            if source.needs_group:
                source.ensure_group()
        try:
            count = self.poll_once(block_ms)
        except RedisError:
            for source in self.sources:
                source.needs_group = True  # a restarted Redis may have lost the group
            raise
        self.last_poll = time.monotonic()
        return count

    @staticmethod
    def _log_backoff(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        metrics.POLLER_BACKOFFS.inc()
        log.warning(
            "poll failed; backing off",
            extra={"error": str(error), "attempt": state.attempt_number,
                   "retry_in_s": round(pause, 2)},
        )  # fmt: skip

    def poll_once(self, block_ms: int | None = BLOCK_MS) -> int:
        """Give one batch to the next partition with entries; return its size."""
        if len(self.sources) == 1:
            count = self.poll_source(self.source, block_ms)
            self.source.maybe_trim()
            self._set_lag()
            return count
        turn = [self.sources[(self._turn + i) % len(self.sources)]
                for i in range(len(self.sources))]  # fmt: skip
        ready = [source for source in turn if not source.resting()]
        if not ready:  # every partition failed a moment ago: Redis is down, back off
            raise RedisError("every partition's master failed; see the warnings before")
        served, count = ready[0], 0
        for source in ready:
            count = self._poll_partition(source, None)
            if count:
                served = source
                break
        if not count and block_ms is not None:
            count = self._poll_partition(served, min(block_ms, IDLE_BLOCK_MS))
        self._turn = (self.sources.index(served) + 1) % len(self.sources)
        for source in ready:
            self._partition_call(source, source.maybe_trim)
        self._set_lag()
        return count

    def _poll_partition(self, source: RedisSource, block_ms: int | None) -> int:
        count = self._partition_call(source, lambda: self.poll_source(source, block_ms))
        return count or 0

    @staticmethod
    def _partition_call(source: RedisSource, call: Callable[[], T]) -> T | None:
        """Run one partition's call; a Redis error rests that partition (its master failing
        over) while the others go on."""
        try:
            if source.needs_group:
                source.ensure_group()
            return call()
        except RedisError as error:
            source.rest(error)
            return None

    def _set_lag(self) -> None:
        lags = [source.lag for source in self.sources if source.lag is not None]
        if lags:
            metrics.POLLER_LAG.set(sum(lags))

    def poll_source(self, source: RedisSource, block_ms: int | None) -> int:
        """Reclaim idle entries of one partition, top the batch up with new ones, process it."""
        limit = self.settings.BATCH_SIZE
        entries = source.claim_idle(limit)
        if len(entries) < limit:
            # With reclaimed entries in hand, do not wait for new ones.
            more = self.read_batch(source, limit - len(entries), None if entries else block_ms)
            entries += more
        if entries:
            self.process_batch(source, entries)
            self.last_batch = len(entries)
        return len(entries)

    def read_batch(self, source: RedisSource, limit: int, block_ms: int | None) -> list[Entry]:
        """Up to `limit` new entries: the first waited for, then those waiting, then, under
        load only, those arriving while they keep coming (for at most BATCH_WINDOW_MS)."""
        entries = source.read(limit, block_ms)
        deadline = time.monotonic() + self.settings.BATCH_WINDOW_MS / 1000
        linger = self.last_batch > 1
        # A partition gets 1/P of the traffic: it waits P times as long for its next entry.
        pause_s = LINGER_S * self.settings.STREAM_PARTITIONS
        while entries and len(entries) < limit and (left := deadline - time.monotonic()) > 0:
            more = source.read(limit - len(entries), None)
            if not more and linger:
                time.sleep(min(pause_s, left))
                more = source.read(limit - len(entries), None)
            if not more:
                break  # nothing more is coming: go now rather than wait for a fuller batch
            entries += more
        return entries

    def process_batch(self, source: RedisSource, entries: Sequence[Entry]) -> None:
        """Invoke infer on the batch; ack what it wrote; dead-letter what failed too often."""
        started = time.perf_counter()
        try:
            with source.holding([e.id for e in entries]):
                response = self.invoke(source.event_of(entries))
        except Exception as error:
            metrics.POLLER_BATCHES.labels("failed").inc()
            raise InvokeError(f"batch of {len(entries)} failed whole: {error}") from error
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [e.id for e in entries if e.id not in failed]
        limit = self.settings.MAX_DELIVERIES
        dead = [e for e in entries if e.id in failed and e.deliveries >= limit]
        if dead:
            source.dead_letter(dead)
        self.checkpoint("before_ack")
        source.ack(done)
        metrics.POLLER_BATCHES.labels("ok").inc()
        metrics.POLLER_ENTRIES.labels("acked").inc(len(done))
        metrics.POLLER_ENTRIES.labels("failed").inc(len(failed) - len(dead))
        metrics.POLLER_BATCH_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "batch",
            extra={"consumer": self.consumer, "stream": source.stream,
                   "entries": len(entries), "acked": len(done),
                   "failed": len(failed), "dead_lettered": len(dead),
                   "first_id": entries[0].id, "last_id": entries[-1].id},
        )  # fmt: skip


def redis_poller(
    settings: Settings,
    client: SyncClient,
    invoke: Invoker,
    consumer: str | None = None,
    stopping: threading.Event | None = None,
    checkpoint: crash.Checkpoint = crash.no_crash,
    partitions: Sequence[int] | None = None,
) -> Poller:
    """A poller of the stream's partitions (all, or those given) through `client`; consumer
    name host-pid-random by default."""
    name = consumer or consumer_name()
    streams = settings.streams
    chosen = range(len(streams)) if partitions is None else partitions
    sources = [RedisSource(settings, client, name, streams[p]) for p in chosen]
    return Poller(settings, sources, invoke, stopping, checkpoint)
