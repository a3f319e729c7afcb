"""A Kinesis stream read as Lambda's Kinesis event source mapping reads it.

Each shard is read in order, from its checkpoint (the last sequence number done, kept in Redis),
or from the oldest record (TRIM_HORIZON). GetRecords fills a batch of up to BATCH_SIZE records for
at most BATCH_WINDOW_MS. The batch goes to the infer handler as Lambda's own Kinesis event, and
the outcome moves the checkpoint:
- no `batchItemFailures`: past the batch;
- failures: up to the lowest sequence number named, and the batch is tried again from there;
- the function failing on the batch (a crash): the batch is split in two and each half is tried
  (bisect on error);
- an outage (the function not reached, or reporting a dependency down): the same batch is tried
  again after a backoff, however long the outage lasts, and the try does not count.
A batch whose records were tried MAX_DELIVERIES times is described on the on-failure queue
(ON_FAILURE_QUEUE_URL, the body Lambda sends there), and the checkpoint moves past it. Records
behind it in the batch were written by the earlier tries.

The shard stays blocked meanwhile, so a shard's records are done in order. Several pollers share
the shards through a lease per shard in Redis, each taking its share of the shards among the
pollers seen within CLAIM_IDLE_MS. A lease not renewed within CLAIM_IDLE_MS (its poller died)
passes to another poller, which reads from the checkpoint. The infer function writes the
redelivered records' rows once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

from streamfn.core import crash, metrics
from streamfn.core.clock import now_ms
from streamfn.core.connections import SyncClient
from streamfn.core.keys import kinesis_key
from streamfn.core.settings import Settings
from streamfn.poller.heartbeat import beating
from streamfn.poller.invoke import InvokeError, Invoker, is_outage
from streamfn.stream import events

log = logging.getLogger(__name__)

# How long an idle shard waits before its next GetRecords: Kinesis takes 5 a second per shard.
IDLE_S = 0.25
SHARDS_EVERY_S = 30.0  # how often the shard list is read again (a resharded stream)

# The lease of one shard (KEYS[1]) for a poller (ARGV[1]) that holds ARGV[5] leases now, with
# the pollers seen lately (KEYS[2], scored by their last poll) sharing ARGV[4] shards: renew it
# if this poller holds it, take it if it is free and this poller holds less than its share,
# give it up if this poller holds more than its share and the shard is idle (ARGV[6] = 1).
# 1: this poller holds the shard.
_LEASE = """
local ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local share = math.ceil(tonumber(ARGV[4]) / redis.call('ZCARD', KEYS[2]))
local held = tonumber(ARGV[5])
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  if held > share and ARGV[6] == '1' then
    redis.call('DEL', KEYS[1])
    return 0
  end
elseif owner or held >= share then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return 1
"""
# Keep a lease this poller holds alive while a batch is invoked (a cold start outlasts it).
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# Move a shard's checkpoint forward, only while holding its lease (a poller that lost it moves
# nothing). Sequence numbers are decimal strings up to 128 bits: compared by length, then text.
_CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local done = redis.call('HGET', KEYS[2], ARGV[2])
if done and (#done > #ARGV[3] or (#done == #ARGV[3] and done >= ARGV[3])) then return 1 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
_EXPIRED = "ExpiredIteratorException"
_THROTTLED = "ProvisionedThroughputExceededException"
_GONE = "ResourceNotFoundException"


class LeaseLostError(RuntimeError):
    """Another poller took the shard while this one worked on it."""


@dataclass
class Shard:
    """What this poller holds of one shard: where it reads next, and the batches to try."""

    shard_id: str
    parent: str | None = None  # read only once the parent shard is read to its end
    iterator: str | None = None
    batches: deque[list[dict[str, Any]]] = field(default_factory=deque)
    tries: int = 0  # of the first batch, outages not counted
    ended: bool = False  # a closed shard read to its end
    next_read: float = 0.0  # monotonic time it may be read again (an idle or throttled shard)


class KinesisSource:
    """KINESIS_STREAM as Lambda's mapping reads it, each batch invoked through `invoke`."""

    def __init__(
        self, settings: Settings, client: Any, redis: SyncClient, invoke: Invoker, consumer: str,
        sqs: Any = None, checkpoint: crash.Checkpoint = crash.no_crash,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.client = client
        self.redis = redis
        self.invoke = invoke
        self.consumer = consumer
        self.sqs = sqs  # for the on-failure queue
        self.checkpoint = checkpoint
        self.stream = str(settings.KINESIS_STREAM)
        self.arn = self.stream  # the stream's ARN once it has been described
        self.shards: dict[str, Shard] = {}
        self._listed_at = -SHARDS_EVERY_S
        self._lease = redis.register_script(_LEASE)
        self._move = redis.register_script(_CHECKPOINT)
        self._renew = redis.register_script(_RENEW)
        # One slot for the Lua calls: the stream's hash tag on one node, `{streamfn}` on a cluster.
        self.checkpoints_key = kinesis_key(self.stream, "checkpoints")
        self.pollers_key = kinesis_key(self.stream, "pollers")
        self.held: set[str] = set()

    def lease_key(self, shard_id: str) -> str:
        return kinesis_key(self.stream, f"lease:{shard_id}")

    def lease(self, shard: Shard) -> bool:
        """Whether this poller holds the shard now (renewed, taken or given up: see _LEASE)."""
        idle = "0" if shard.batches else "1"
        args = [self.consumer, self.settings.CLAIM_IDLE_MS, now_ms(), len(self.shards),
                len(self.held), idle]  # fmt: skip
        if self._lease(keys=[self.lease_key(shard.shard_id), self.pollers_key], args=args):
            self.held.add(shard.shard_id)
            return True
        self.held.discard(shard.shard_id)
        return False

    def poll_once(self, wait: bool) -> int:
        """One batch of each shard this poller holds; the records invoked (0: nothing to do)."""
        if time.monotonic() - self._listed_at >= SHARDS_EVERY_S:
            self._list_shards()
        invoked = 0
        for shard in list(self.shards.values()):
            if not self.lease(shard):
                self.forget(shard)  # not ours: forget what we read of it
                continue
            if self.waiting(shard):
                continue
            try:
                invoked += self.step(shard)
            except LeaseLostError:
                log.warning("shard taken by another poller", extra={"shard": shard.shard_id})
                self.forget(shard)
        if invoked == 0 and wait:
            due = min((s.next_read for s in self.shards.values()), default=0.0)
            time.sleep(min(max(due - time.monotonic(), 0.01), IDLE_S))
        return invoked

    def forget(self, shard: Shard) -> None:
        """Drop what this poller read of a shard: its next holder reads from the checkpoint."""
        self.shards[shard.shard_id] = Shard(shard.shard_id, shard.parent, ended=shard.ended)

    def waiting(self, shard: Shard) -> bool:
        """Whether a shard is not to be read now: idle or throttled lately, read to its end, or
        a child whose parent is not read to its end (a resharded stream keeps its order)."""
        if shard.batches:
            return False
        parent = self.shards.get(shard.parent or "")
        return shard.ended or (parent is not None and not parent.ended) or (
            time.monotonic() < shard.next_read)  # fmt: skip

    def _list_shards(self) -> None:
        summary = self.client.describe_stream_summary(StreamName=self.stream)
        self.arn = summary["StreamDescriptionSummary"]["StreamARN"]
        listed = self.client.list_shards(StreamName=self.stream)["Shards"]
        # A shard trimmed away (a parent past the stream's retention) is dropped.
        self.shards = {s["ShardId"]: self.shards.get(s["ShardId"])
                       or Shard(s["ShardId"], s.get("ParentShardId")) for s in listed}  # fmt: skip
        self.held &= set(self.shards)
        self._listed_at = time.monotonic()

    def step(self, shard: Shard) -> int:
        """Try the shard's first batch (reading one if none is waiting); its size."""
        if not shard.batches:
            records = self.read(shard)
            if not records:
                return 0
            shard.batches.append(records)
            shard.tries = 0
        batch = shard.batches[0]
        started = time.perf_counter()
        event = events.kinesis_event(batch, shard.shard_id, self.arn,
                                     self.settings.AWS_DEFAULT_REGION)  # fmt: skip
        try:
            with self.holding(shard):
                response = self.invoke(event)
        except Exception as error:
            metrics.POLLER_BATCHES.labels("failed").inc()
            if is_outage(error):
                raise InvokeError(f"batch of {len(batch)} failed whole: {error}") from error
            self.crashed(shard, batch, error)
            return len(batch)
        named = [f.get("itemIdentifier") for f in response.get("batchItemFailures", [])]
        position = {r["SequenceNumber"]: i for i, r in enumerate(batch)}
        # An id not in the batch fails it whole, as on Lambda.
        first_failed = min((position.get(str(n), 0) for n in named), default=len(batch))
        self.checkpoint("before_ack")
        if first_failed:
            self.move(shard, batch[first_failed - 1]["SequenceNumber"])
        metrics.POLLER_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.POLLER_ENTRIES.labels("acked").inc(first_failed)
        log.info(
            "batch",
            extra={"consumer": self.consumer, "shard": shard.shard_id, "entries": len(batch),
                   "acked": first_failed, "failed": len(batch) - first_failed,
                   "first_id": batch[0]["SequenceNumber"], "last_id": batch[-1]["SequenceNumber"]},
        )  # fmt: skip
        if first_failed == len(batch):
            metrics.POLLER_BATCHES.labels("ok").inc()
            shard.batches.popleft()
            shard.tries = 0
            return len(batch)
        metrics.POLLER_ENTRIES.labels("failed").inc(len(batch) - first_failed)
        shard.batches[0] = batch[first_failed:]
        self.tried(shard, "named in batchItemFailures (GET /predictions/<id> has each error)")
        return len(batch)

    def crashed(self, shard: Shard, batch: list[dict[str, Any]], error: Exception) -> None:
        """The function failed on the batch: split it (bisect on error), or count the try."""
        log.warning("batch failed whole", extra={"shard": shard.shard_id, "records": len(batch),
                                                 "error": str(error)})  # fmt: skip
        if len(batch) > 1:
            half = len(batch) // 2
            shard.batches.popleft()
            shard.batches.extendleft([batch[half:], batch[:half]])
            shard.tries = 0  # each half gets its own tries
            return
        self.tried(shard, f"function error: {error}")

    def tried(self, shard: Shard, why: str) -> None:
        """Count a failed try of the first batch; past MAX_DELIVERIES, give it up."""
        shard.tries += 1
        if shard.tries < self.settings.MAX_DELIVERIES:
            return
        batch = shard.batches[0]
        # Described and passed before it is dropped: a failed send tries it again.
        self.on_failure(shard, batch, why)
        self.move(shard, batch[-1]["SequenceNumber"])
        shard.batches.popleft()
        shard.tries = 0

    def on_failure(self, shard: Shard, batch: list[dict[str, Any]], why: str) -> None:
        """Describe the given-up batch on the on-failure queue, as Lambda does."""
        info = failure_record(self.arn, shard.shard_id, batch, self.settings.MAX_DELIVERIES)
        metrics.POLLER_ENTRIES.labels("dead_letter").inc(len(batch))
        log.error(
            "batch given up after its retries",
            extra={"shard": shard.shard_id, "first_sequence": batch[0]["SequenceNumber"],
                   "last_sequence": batch[-1]["SequenceNumber"], "records": len(batch),
                   "error": why},
        )  # fmt: skip
        if self.settings.ON_FAILURE_QUEUE_URL and self.sqs is not None:
            self.sqs.send_message(QueueUrl=self.settings.ON_FAILURE_QUEUE_URL,
                                  MessageBody=orjson.dumps(info).decode())  # fmt: skip

    def move(self, shard: Shard, sequence: str) -> None:
        """Move the shard's checkpoint forward to `sequence` (done); LeaseLostError if another
        poller holds the shard now."""
        if not self._move(keys=[self.lease_key(shard.shard_id), self.checkpoints_key],
                          args=[self.consumer, shard.shard_id, sequence]):  # fmt: skip
            raise LeaseLostError(shard.shard_id)

    @contextmanager
    def holding(self, shard: Shard) -> Iterator[None]:
        """Renew the shard's lease every quarter of CLAIM_IDLE_MS while a batch is invoked, so
        that no other poller takes the shard from a slow invocation (a cold start)."""
        every_s = max(self.settings.CLAIM_IDLE_MS // 4, 1) / 1000
        key, ttl = self.lease_key(shard.shard_id), self.settings.CLAIM_IDLE_MS
        with beating(every_s, lambda: self._renew(keys=[key], args=[self.consumer, ttl]), "shard"):
            yield

    def read(self, shard: Shard) -> list[dict[str, Any]]:
        """Up to BATCH_SIZE records from the shard's position, more for at most BATCH_WINDOW_MS."""
        limit = self.settings.BATCH_SIZE
        records = self._get(shard, limit)
        deadline = time.monotonic() + self.settings.BATCH_WINDOW_MS / 1000
        while records and len(records) < limit and time.monotonic() < deadline:
            more = self._get(shard, limit - len(records))
            if not more:
                break
            records += more
        return records

    def _get(self, shard: Shard, limit: int) -> list[dict[str, Any]]:
        if shard.ended:
            return []
        try:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard.shard_id)
            reply = self.client.get_records(ShardIterator=shard.iterator, Limit=limit)
        except ClientError as error:
            return self._unread(shard, error)
        shard.iterator = reply.get("NextShardIterator")
        shard.ended = shard.iterator is None  # a closed shard, read to its end
        records = list(reply.get("Records", []))
        if not records:
            shard.next_read = time.monotonic() + IDLE_S
        return records

    def _unread(self, shard: Shard, error: ClientError) -> list[dict[str, Any]]:
        """What a shard's failed read means. Nothing is in hand when it reads (every record read
        is done and checkpointed), so it can start again from its checkpoint."""
        code = error.response.get("Error", {}).get("Code", "")
        if code == _EXPIRED:  # unused for 5 minutes (a long outage): get a new one
            shard.iterator = None
        elif code == _THROTTLED:  # this shard only: the others go on
            shard.next_read = time.monotonic() + 1.0
        elif code == _GONE:  # trimmed away since it was listed
            shard.ended = True
        else:
            raise error
        log.warning("shard not read", extra={"shard": shard.shard_id, "error": code})
        return []

    def _iterator(self, shard_id: str) -> str:
        done = self.redis.hget(self.checkpoints_key, shard_id)
        where: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if done is not None:
            where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                     "StartingSequenceNumber": done.decode()}  # fmt: skip
        reply = self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **where)
        return str(reply["ShardIterator"])


def failure_record(
    stream_arn: str, shard_id: str, batch: list[dict[str, Any]], tries: int
) -> dict[str, Any]:
    """What Lambda sends to a Kinesis mapping's on-failure destination: the batch's place in the
    shard (the records stay in the stream until its retention ends)."""
    arrivals = [r["ApproximateArrivalTimestamp"] for r in batch]
    return {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": tries},
        "responseContext": {"functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": batch[0]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": min(arrivals).isoformat(),
            "approximateArrivalOfLastRecord": max(arrivals).isoformat(),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }
