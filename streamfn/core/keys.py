"""Every Redis key streamfn writes, named in one place.

Plain strings built from what a `Keys` is given (Redis Cluster or not, the partitions, the
streams), never from the process's environment: `Settings.keys` makes the one a process uses.

On one node the names are those of every earlier release (deployments keep their data). On a
Redis Cluster a key's hash tag puts it in the slot its scripts need (a script's keys must share a
slot):
- what is counted and read together (counts, windows, schemas, labels) is under `{streamfn}:`;
- a message's own keys (its result, its shadow result) are in its partition's slot, beside its
  stream, so that the work per message spreads over the masters as the streams do;
- what ingest counts as it appends is in the stream's own slot, so that one script appends and
  counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamfn.core import stream_ids

ROOT = "streamfn:"
CLUSTER_ROOT = "{streamfn}:"
DLQ_SUFFIX = ":dlq"


def partition_stream(stream_key: str, partition: int, partitions: int) -> str:
    """The stream of one partition: STREAM_KEY itself when there is one, else `<key>:{p}`."""
    return stream_key if partitions == 1 else f"{stream_key}:{{{partition}}}"


def dlq_key(stream_key: str) -> str:
    """The dead-letter stream that goes with a stream (the same slot: it keeps the hash tag)."""
    return stream_key + DLQ_SUFFIX


def slot_tag(key: str) -> str:
    """What Redis Cluster hashes of a key: its hash tag's content, or the whole key."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start != -1 and end > start + 1 else key


@dataclass(frozen=True)
class Keys:
    """The key names of one deployment.

    `streams` are the Redis streams ingest appends to, one per partition (empty when the stream
    is Kinesis or SQS: then nothing is counted beside a Redis stream)."""

    cluster: bool = False
    partitions: int = 1
    streams: tuple[str, ...] = ()

    @property
    def root(self) -> str:
        """The start of every key kept beside the streams (all in one slot on a cluster)."""
        return CLUSTER_ROOT if self.cluster else ROOT

    def message_root(self, message_id: str) -> str:
        """The start of a message's own keys: on a Redis Cluster with partitions, a stream id's
        keys carry its partition's hash tag."""
        if self.cluster and self.partitions > 1:
            partition = stream_ids.partition_of(message_id, self.partitions)
            if partition is not None:
                return f"{ROOT}{{{partition}}}:"
        return self.root

    # A message's own keys.
    def result(self, message_id: str) -> str:
        """One message's state (GET /predictions reads it)."""
        return f"{self.message_root(message_id)}result:{message_id}"

    def shadow(self, message_id: str) -> str:
        """One message's shadow result (the challenger's rows)."""
        return f"{self.message_root(message_id)}shadow:{message_id}"

    def labels(self, message_id: str) -> str:
        """The hash of one message's ground-truth labels (POST /feedback)."""
        return f"{self.root}labels:{message_id}"

    # Models.
    def schema(self, api_name: str) -> str:
        """A model's last schema read from the registry, kept by ingest."""
        return f"{self.root}schema:{api_name}"

    def canary(self, api_name: str) -> str:
        """The hash of a model's canary: the share its challenger serves, the step, the decision
        (streamfn.core.canaries)."""
        return f"{self.root}canary:{api_name}"

    def canary_lock(self, api_name: str) -> str:
        """Held, with an expiry, by the one `streamfn canary` command running for a model."""
        return f"{self.canary(api_name)}:lock"

    # A local Kinesis mapping: checkpoints, pollers, a shard's lease (one slot per stream).
    def kinesis(self, stream: str, part: str) -> str:
        """A local Kinesis mapping's key for one stream."""
        return f"{self.root}kinesis:{{{stream}}}:{part}"

    # The console's counts (streamfn.sink.counts).
    def accepted_roots(self) -> list[str]:
        """Per partition, where ingest counts what it accepts: beside every other count, or on
        a cluster in the partition stream's own slot."""
        if not self.cluster or not self.streams:
            return [self.root] * self.partitions
        return [self.stream_root(stream) for stream in self.streams]

    def stream_root(self, stream: str) -> str:
        """Where the keys kept with one stream start (in its slot on a cluster)."""
        return f"{ROOT}{{{slot_tag(stream)}}}:" if self.cluster else self.root

    def idempotency(self, key_hash: str, stream: str | None = None) -> str:
        """What a request's Idempotency-Key appended (its fingerprint, message id and time), in
        the slot of the stream it went to (one script checks it and appends), beside every
        other count when the stream is Kinesis or SQS."""
        root = self.root if stream is None else self.stream_root(stream)
        return f"{root}idem:{key_hash}"

    def idempotency_claim(self, key_hash: str) -> str:
        """On a Redis Cluster with partitions, which request an Idempotency-Key came with first,
        in one slot whatever the partition (a retry with other records may go to another)."""
        return f"{self.root}idem-claim:{key_hash}"

    def lag_bytes(self, stream: str) -> str:
        """The bytes of records a stream holds not yet acknowledged (MAX_LAG_BYTES): added by
        ingest's append, taken off by the poller's acknowledgement. One per stream."""
        return f"{self.stream_root(stream)}lag_bytes:{stream}"

    def totals(self, at: str | None = None) -> str:
        """The hash of records ingested and written since the data began (under `at`, a root
        of accepted_roots, the records one partition accepted)."""
        return f"{at or self.root}console:totals"

    def series(self, kind: str, slot: int, at: str | None = None) -> str:
        """The counter of one kind of records in one slot of the chart (`at`: see totals)."""
        return f"{at or self.root}console:{kind}:{slot}"

    def object_days(self) -> str:
        """The sorted set of "<model>/<date>" with objects, scored by the date."""
        return f"{self.root}console:partitions"

    def objects(self, model: str, day: str) -> str:
        """The hash of one model and date: objects, rows, newest (the newest object's key)."""
        return f"{self.root}console:objects:{model}:{day}"

    def versions(self, model: str) -> str:
        """The hash of a model's versions: version -> when it first wrote a row (epoch ms)."""
        return f"{self.root}console:versions:{model}"

    # Monitoring windows (streamfn.monitor).
    def open_windows(self) -> str:
        """The sorted set of open windows (model:version:start, scored by start)."""
        return f"{self.root}monitor:open"

    def window(self, model: str, version: str, start: int) -> str:
        """The hash of one window's counts."""
        return f"{self.root}monitor:{model}:{version}:{start}"

    def window_lock(self, member: str) -> str:
        """Held by the one process closing a window (member model:version:start)."""
        return f"{self.open_windows()}:lock:{member}"

    def window_index(self, model: str) -> str:
        """The sorted set of a model's windows (member version:start, score start)."""
        return f"{self.root}monitor:index:{model}"
