"""A Redis Stream as one poller reads it: its partitions in turn, one consumer of the group on each.

Entries left pending (a failed message, a batch that failed whole, a poller that died) are
reclaimed once idle for CLAIM_IDLE_MS; the delivery count is the try counter, and past
MAX_DELIVERIES a failing entry goes to the dead-letter stream, then is acknowledged (in that
order: a crash between leaves a duplicate, never a loss).

Batches adapt to the load. The first entry is waited for; then the poller takes what is waiting
at once. When the last batch was a single entry (light traffic), that is all: the entry goes out
alone, at once. When it held more (entries arrived while it was in flight), the poller lingers
a millisecond at a time while entries keep arriving, for at most BATCH_WINDOW_MS, so that under
load batches grow and their fixed cost is shared.

With STREAM_PARTITIONS > 1 the partitions are read in turn, one XREADGROUP each (a Redis Cluster
refuses one command over several slots): the first with entries gets the batch, and the next
pass starts at the partition after it. When none has any, the poller waits on one of them for
IDLE_BLOCK_MS, so an entry on another waits that long at most. A partition lingers P times as
long for more entries (it gets 1/P of them), and one whose master fails rests while the others
go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TypeVar

from redis.exceptions import RedisError

from streamfn.core import crash, metrics
from streamfn.core.connections import SyncClient
from streamfn.core.settings import Settings
from streamfn.stream.base import Batch, Settled, fill_batch
from streamfn.stream.redis.partition import Entry, Partition

log = logging.getLogger(__name__)
T = TypeVar("T")

BLOCK_MS = 1000  # how long an idle read waits; also how quickly a stop request is noticed
# Under load, how long to wait for more entries before sending a batch that could grow. (Redis
# times blocking reads out at its own tick, 100 ms: the poller waits on its side.)
LINGER_S = 0.001
IDLE_BLOCK_MS = 20  # with several partitions: how long an idle read waits on one of them


class RedisSource:
    """One consumer of the group on each of its partitions; several pollers share the work."""

    transient = (RedisError,)

    def __init__(
        self, settings: Settings, client: SyncClient, consumer: str,
        partitions: Sequence[int] | None = None, checkpoint: crash.Checkpoint = crash.no_crash,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.consumer = consumer
        self.checkpoint = checkpoint
        streams = settings.streams
        chosen = range(len(streams)) if partitions is None else partitions
        self.partitions = [Partition(settings, client, consumer, streams[p]) for p in chosen]
        self.name = ",".join(p.stream for p in self.partitions)
        self.last_batch = 0  # entries of the last batch: more than one means load
        self._turn = 0  # the partition the next pass starts at

    def batches(self, wait: bool) -> Iterator[Batch[Entry]]:
        """At most one batch: of the next partition with entries."""
        block_ms = BLOCK_MS if wait else None
        if len(self.partitions) == 1:
            yield from self._one_partition(self.partitions[0], block_ms)
            return
        turn = [self.partitions[(self._turn + i) % len(self.partitions)]
                for i in range(len(self.partitions))]  # fmt: skip
        ready = [partition for partition in turn if not partition.resting()]
        if not ready:  # every partition failed a moment ago: Redis is down, back off
            raise RedisError("every partition's master failed; see the warnings before")
        served, batch = ready[0], None
        for partition in ready:
            batch = self._partition_call(partition, lambda p=partition: self.read(p, None))
            if batch is not None:
                served = partition
                break
        if batch is None and block_ms is not None:
            idle_ms = min(block_ms, IDLE_BLOCK_MS)
            batch = self._partition_call(served, lambda: self.read(served, idle_ms))
        self._turn = (self.partitions.index(served) + 1) % len(self.partitions)
        if batch is not None:
            yield batch
        for partition in ready:
            self._partition_call(partition, partition.maybe_trim)
        self._set_lag()

    def _one_partition(self, partition: Partition, block_ms: int | None) -> Iterator[Batch[Entry]]:
        try:
            if partition.needs_group:
                partition.ensure_group()
            batch = self.read(partition, block_ms)
            if batch is not None:
                yield batch
            partition.maybe_trim()
        except RedisError:
            partition.needs_group = True  # a restarted Redis may have lost the group
            raise
        self._set_lag()

    @staticmethod
    def _partition_call(partition: Partition, call: Callable[[], T]) -> T | None:
        """Run one partition's call; a Redis error rests that partition (its master failing
        over) while the others go on."""
        try:
            if partition.needs_group:
                partition.ensure_group()
            return call()
        except RedisError as error:
            partition.rest(error)
            return None

    def _set_lag(self) -> None:
        lags = [partition.lag for partition in self.partitions if partition.lag is not None]
        if lags:
            metrics.POLLER_LAG.set(sum(lags))

    def read(self, partition: Partition, block_ms: int | None) -> Batch[Entry] | None:
        """Reclaim idle entries of one partition and top the batch up with new ones: the first
        waited for (unless entries were reclaimed), then those waiting, then, under load only,
        those arriving while they keep coming (for at most BATCH_WINDOW_MS)."""
        limit = self.settings.BATCH_SIZE
        entries = partition.claim_idle(limit)
        if len(entries) < limit:
            wait_ms = None if entries else block_ms
            # A partition gets 1/P of the traffic: it waits P times as long for its next entry.
            linger_s = LINGER_S * self.settings.STREAM_PARTITIONS if self.last_batch > 1 else 0.0
            entries += fill_batch(
                lambda count, first: partition.read(count, wait_ms if first else None),
                limit - len(entries), self.settings.BATCH_WINDOW_MS / 1000, linger_s,
            )  # fmt: skip
        if not entries:
            return None
        self.last_batch = len(entries)
        return Batch(entries, [e.id for e in entries], partition.event_of(entries),
                     {"stream": partition.stream})  # fmt: skip

    def holding(self, batch: Batch[Entry]) -> AbstractContextManager[object]:
        """Keep the batch's entries from looking idle while the invocation runs."""
        return self._partition(batch).holding(batch.ids)

    def settle(self, batch: Batch[Entry], failed: set[str]) -> Settled:
        """Dead-letter what failed too often, then acknowledge what was written. With several
        partitions, a Redis error rests this one (its entries stay pending, for a later claim)
        while the others go on."""
        partition = self._partition(batch)
        if len(self.partitions) == 1:
            try:
                return self._settle(partition, batch, failed)
            except RedisError:
                partition.needs_group = True  # a restarted Redis may have lost the group
                raise
        settled = self._partition_call(partition, lambda: self._settle(partition, batch, failed))
        return settled or Settled(0, len(batch.ids))

    def _settle(self, partition: Partition, batch: Batch[Entry], failed: set[str]) -> Settled:
        done = [e.id for e in batch.items if e.id not in failed]
        limit = self.settings.MAX_DELIVERIES
        dead = [e for e in batch.items if e.id in failed and e.deliveries >= limit]
        if dead:
            partition.dead_letter(dead)
        self.checkpoint("before_ack")
        partition.ack([e for e in batch.items if e.id not in failed])
        return Settled(len(done), len(failed) - len(dead), len(dead))

    def crashed(self, batch: Batch[Entry], error: BaseException) -> bool:
        """Nothing to do here: the entries stay pending, reclaimed after CLAIM_IDLE_MS."""
        return False

    def leave(self) -> None:
        """Leave the group on each partition (unless holding entries)."""
        for partition in self.partitions:
            partition.leave()

    def _partition(self, batch: Batch[Entry]) -> Partition:
        return next(p for p in self.partitions if p.stream == batch.where["stream"])
