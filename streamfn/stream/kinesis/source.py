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
the shards through leases (streamfn.stream.kinesis.leases); a dead poller's shards pass on, and
its successor reads from the checkpoint. The infer function writes the redelivered records' rows
once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from streamfn.core import crash, metrics
from streamfn.core.connections import SyncClient
from streamfn.core.settings import Settings
from streamfn.stream import events
from streamfn.stream.base import Batch, Settled, fill_batch
from streamfn.stream.heartbeat import beating
from streamfn.stream.kinesis.leases import LeaseLostError, Leases

log = logging.getLogger(__name__)

# How long an idle shard waits before its next GetRecords: Kinesis takes 5 a second per shard.
IDLE_S = 0.25
SHARDS_EVERY_S = 30.0  # how often the shard list is read again (a resharded stream)
_EXPIRED = "ExpiredIteratorException"
_THROTTLED = "ProvisionedThroughputExceededException"
_GONE = "ResourceNotFoundException"

Record = dict[str, Any]  # a record as GetRecords gives it


@dataclass
class Shard:
    """What this poller holds of one shard: where it reads next, and the batches to try."""

    shard_id: str
    parent: str | None = None  # read only once the parent shard is read to its end
    iterator: str | None = None
    batches: deque[list[Record]] = field(default_factory=deque)
    tries: int = 0  # of the first batch, outages not counted
    ended: bool = False  # a closed shard read to its end
    next_read: float = 0.0  # monotonic time it may be read again (an idle or throttled shard)


class KinesisSource:
    """KINESIS_STREAM as Lambda's mapping reads it: one batch of each shard this poller holds."""

    transient = (BotoCoreError, ClientError, RedisError)

    def __init__(
        self, settings: Settings, client: Any, redis: SyncClient, consumer: str,
        sqs: Any = None, checkpoint: crash.Checkpoint = crash.no_crash,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.client = client
        self.consumer = consumer
        self.sqs = sqs  # for the on-failure queue
        self.checkpoint = checkpoint
        self.stream = str(settings.KINESIS_STREAM)
        self.name = self.stream  # the stream's ARN once it has been described
        self.shards: dict[str, Shard] = {}
        self.leases = Leases(redis, settings.keys, self.stream, consumer, settings.CLAIM_IDLE_MS)
        self._listed_at = -SHARDS_EVERY_S

    def batches(self, wait: bool) -> Iterator[Batch[Record]]:
        """The first batch of each shard this poller holds (read if none is waiting); with
        `wait` and none to try, a pause until the first shard may be read again."""
        if time.monotonic() - self._listed_at >= SHARDS_EVERY_S:
            self._list_shards()
        tried = 0
        for shard in list(self.shards.values()):
            if not self.leases.hold(shard.shard_id, len(self.shards), not shard.batches):
                self.forget(shard)  # not ours: forget what we read of it
                continue
            if self.waiting(shard):
                continue
            if not shard.batches:
                records = self.read(shard)
                if not records:
                    continue
                shard.batches.append(records)
                shard.tries = 0
            records = shard.batches[0]
            event = events.kinesis_event(records, shard.shard_id, self.name,
                                         self.settings.AWS_DEFAULT_REGION)  # fmt: skip
            tried += 1
            yield Batch(records, [r["SequenceNumber"] for r in records], event,
                        {"shard": shard.shard_id})  # fmt: skip
        if not tried and wait:
            due = min((s.next_read for s in self.shards.values()), default=0.0)
            time.sleep(min(max(due - time.monotonic(), 0.01), IDLE_S))

    def holding(self, batch: Batch[Record]) -> AbstractContextManager[object]:
        """Renew the shard's lease every quarter of CLAIM_IDLE_MS while a batch is invoked, so
        that no other poller takes the shard from a slow invocation (a cold start)."""
        shard_id = batch.where["shard"]
        every_s = max(self.settings.CLAIM_IDLE_MS // 4, 1) / 1000
        return beating(every_s, lambda: self.leases.renew(shard_id), "shard")

    def settle(self, batch: Batch[Record], failed: set[str]) -> Settled:
        """Move the checkpoint up to the first record named; try the rest again."""
        shard = self.shards[batch.where["shard"]]
        records = batch.items
        position = {r["SequenceNumber"]: i for i, r in enumerate(records)}
        done = min((position[n] for n in failed), default=len(records))
        self.checkpoint("before_ack")
        given_up = 0
        try:
            if done:
                self.leases.move(shard.shard_id, records[done - 1]["SequenceNumber"])
            if done == len(records):
                shard.batches.popleft()
                shard.tries = 0
            else:
                shard.batches[0] = records[done:]
                why = "named in batchItemFailures (GET /predictions/<id> has each error)"
                given_up = self.tried(shard, why)
        except LeaseLostError:
            self.lost(shard)
        return Settled(done, len(records) - done - given_up, given_up)

    def crashed(self, batch: Batch[Record], error: BaseException) -> bool:
        """The function failed on the batch: split it (bisect on error), or count the try."""
        shard = self.shards[batch.where["shard"]]
        records = batch.items
        log.warning("batch failed whole", extra={"shard": shard.shard_id, "records": len(records),
                                                 "error": str(error)})  # fmt: skip
        if len(records) > 1:
            half = len(records) // 2
            shard.batches.popleft()
            shard.batches.extendleft([records[half:], records[:half]])
            shard.tries = 0  # each half gets its own tries
            return True
        try:
            metrics.POLLER_ENTRIES.labels("dead_letter").inc(
                self.tried(shard, f"function error: {error}")
            )
        except LeaseLostError:
            self.lost(shard)
        return True

    def leave(self) -> None:
        """Nothing to let go of: the leases expire, and the checkpoints stay."""

    def tried(self, shard: Shard, why: str) -> int:
        """Count a failed try of the first batch; past MAX_DELIVERIES give it up (described on
        the on-failure queue, then passed): the records given up."""
        shard.tries += 1
        if shard.tries < self.settings.MAX_DELIVERIES:
            return 0
        records = shard.batches[0]
        # Described and passed before it is dropped: a failed send tries it again.
        self.on_failure(shard, records, why)
        self.leases.move(shard.shard_id, records[-1]["SequenceNumber"])
        shard.batches.popleft()
        shard.tries = 0
        return len(records)

    def on_failure(self, shard: Shard, records: list[Record], why: str) -> None:
        """Describe the given-up batch on the on-failure queue, as Lambda does."""
        info = failure_record(self.name, shard.shard_id, records, self.settings.MAX_DELIVERIES)
        log.error(
            "batch given up after its retries",
            extra={"shard": shard.shard_id, "first_sequence": records[0]["SequenceNumber"],
                   "last_sequence": records[-1]["SequenceNumber"], "records": len(records),
                   "error": why},
        )  # fmt: skip
        if self.settings.ON_FAILURE_QUEUE_URL and self.sqs is not None:
            self.sqs.send_message(QueueUrl=self.settings.ON_FAILURE_QUEUE_URL,
                                  MessageBody=orjson.dumps(info).decode())  # fmt: skip

    def lost(self, shard: Shard) -> None:
        """Another poller took the shard meanwhile: forget what this one read of it."""
        log.warning("shard taken by another poller", extra={"shard": shard.shard_id})
        self.forget(shard)

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
        self.name = summary["StreamDescriptionSummary"]["StreamARN"]
        listed = self.client.list_shards(StreamName=self.stream)["Shards"]
        # A shard trimmed away (a parent past the stream's retention) is dropped.
        self.shards = {s["ShardId"]: self.shards.get(s["ShardId"])
                       or Shard(s["ShardId"], s.get("ParentShardId")) for s in listed}  # fmt: skip
        self.leases.held &= set(self.shards)
        self._listed_at = time.monotonic()

    def read(self, shard: Shard) -> list[Record]:
        """Up to BATCH_SIZE records from the shard's position, more for at most BATCH_WINDOW_MS."""
        window_s = self.settings.BATCH_WINDOW_MS / 1000
        return fill_batch(lambda count, _first: self._get(shard, count),
                          self.settings.BATCH_SIZE, window_s)  # fmt: skip

    def _get(self, shard: Shard, limit: int) -> list[Record]:
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

    def _unread(self, shard: Shard, error: ClientError) -> list[Record]:
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
        done = self.leases.checkpoint(shard_id)
        where: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if done is not None:
            where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                     "StartingSequenceNumber": done}  # fmt: skip
        reply = self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **where)
        return str(reply["ShardIterator"])


def failure_record(stream_arn: str, shard_id: str, batch: list[Record], tries: int) -> Record:
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
