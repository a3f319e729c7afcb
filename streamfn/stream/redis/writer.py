"""Ingest's side of a Redis Stream: one entry per request, with back-pressure in entries
(MAX_LAG) and in bytes (MAX_LAG_BYTES); with INGEST_WAIT_REPLICAS, answered only once that many
replicas have it; with an Idempotency-Key, appended once however often it is retried."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ConnectionError, MovedError, TimeoutError

from streamfn.core import connections, series
from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.stream.base import (
    Appended,
    IdempotencyKeyReusedError,
    RefusedError,
    fingerprint,
)
from streamfn.stream.partitions import Router

# How long ingest waits for INGEST_WAIT_REPLICAS replicas: within the request's Redis timeout.
WAIT_MS = 1000

# One round trip: read the group's lag (Redis 7; XLEN where lag is unknown: Redis 6.2, a group
# not created yet, or a lag Redis cannot compute) and XADD only if it is within the limit.
# Returns the new entry's id and receive time (Redis's clock, the id's time part), or the
# lag as an integer when the stream is too far behind.
# Redis can overstate a group's lag for good after an AOF reload or on a promoted replica: the
# replayed XCLAIM ... LASTID moves the group on without its read counter (redis/redis#10569).
# Every entry not yet delivered is still in the stream (trimming stops at the oldest one), so
# XLEN bounds the lag, and a lag over the limit is checked against it before refusing.
# The bytes of data not yet acknowledged are counted beside the stream (KEYS[4], taken off by the
# poller's acknowledgement): over MAX_LAG_BYTES the script answers "full <bytes>" and appends
# nothing. A body larger than the budget still goes into a stream that holds nothing, so that no
# request is refused for ever.
# With an Idempotency-Key (KEYS[5], in the stream's slot), the record of what the key appended is
# read first, after the replicas (a master that cannot confirm takes nothing) and before the lag
# (a retry of an accepted request is answered even when the stream is full): the same request
# (its fingerprint) is answered as it was, "{id, received_at, 'replayed'}", appending nothing;
# another request is "mismatch 0". The record is written with the entry, in the same script: a
# replica that has the one has the other, so a retry after a failover finds either both (replayed)
# or neither (appended once). A replay rewrites the record as it is, so that the WAIT that follows
# confirms replicas that hold it (and the entry before it).
# KEYS: the stream, the accepted-records slot counter and the totals (streamfn.sink.counts: on a
# Redis Cluster, in the stream's slot), the stream's unacknowledged bytes, and the idempotency
# record if any.
# ARGV: group, MAX_LAG, model, data, records, the slot counter's ttl, partition, partitions,
# INGEST_WAIT_REPLICAS, MAX_LAG_BYTES, and with KEYS[5]: the request's fingerprint,
# IDEMPOTENCY_TTL_S.
# With replicas to wait for, a master with fewer connected (a replica promoted, its own not back
# yet) takes nothing: "replicas <n>" before any XADD, so a refusal is never a half-accepted
# entry that a retry would repeat.
_APPEND = """
if tonumber(ARGV[9]) > 0 then
  local info = redis.call('INFO', 'replication')
  local connected = tonumber(string.match(info, 'connected_slaves:(%d+)')) or 0
  if connected < tonumber(ARGV[9]) then return 'replicas ' .. connected end
end
if KEYS[5] then
  local held = redis.call('GET', KEYS[5])
  if held then
    local hash, first, at = string.match(held, '^(%x+) (%S+) (%d+)$')
    if hash ~= ARGV[11] then return 'mismatch 0' end
    if tonumber(ARGV[9]) > 0 then redis.call('SET', KEYS[5], held, 'KEEPTTL') end
    return {first, at, 'replayed'}
  end
end
local lag = nil
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, group in ipairs(groups) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then lag = fields['lag'] end
  end
end
if type(lag) ~= 'number' then lag = redis.call('XLEN', KEYS[1]) end
if lag >= tonumber(ARGV[2]) then
  lag = math.min(lag, redis.call('XLEN', KEYS[1]))
  if lag >= tonumber(ARGV[2]) then return lag end
end
local held = tonumber(redis.call('GET', KEYS[4]) or '0')
if held > 0 and held + #ARGV[4] > tonumber(ARGV[10]) then return 'full ' .. held end
local now = redis.call('TIME')
local received_at = tostring(now[1] * 1000 + math.floor(now[2] / 1000))
local part, parts = tonumber(ARGV[7]), tonumber(ARGV[8])
local id
if parts == 1 then
  -- The id's time part is received_at itself (Redis 7's "<ms>-*"): with '*', Redis reads its
  -- clock again and can land a millisecond later. Where that is refused (Redis 6.2, or a clock
  -- behind the stream's last id) '*' it is, and the two may differ by that millisecond.
  ok, id = pcall(redis.call, 'XADD', KEYS[1], received_at .. '-*', 'model', ARGV[3],
    'data', ARGV[4], 'received_at', received_at)
  if not ok then
    id = redis.call('XADD', KEYS[1], '*', 'model', ARGV[3], 'data', ARGV[4],
      'received_at', received_at)
  end
else
  -- Partition p's ids have a sequence number equal to p modulo the partitions: ids are unique
  -- across partitions (a result key or an object name needs no partition) and each names its
  -- partition. The smallest such id after the stream's last one.
  ok, id = pcall(redis.call, 'XADD', KEYS[1], received_at .. '-' .. part, 'model', ARGV[3],
    'data', ARGV[4], 'received_at', received_at)
  if not ok then
    local info, last = redis.call('XINFO', 'STREAM', KEYS[1]), nil
    for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
    local ms, last_seq = string.match(last, '^(%d+)-(%d+)$')
    last_seq = tonumber(last_seq)
    local seq = last_seq + (part - last_seq) % parts
    if seq <= last_seq then seq = seq + parts end
    id = redis.call('XADD', KEYS[1], ms .. '-' .. string.format('%d', seq), 'model', ARGV[3],
      'data', ARGV[4], 'received_at', received_at)
  end
end
redis.call('INCRBY', KEYS[4], #ARGV[4])
if KEYS[5] then
  redis.call('SET', KEYS[5], ARGV[11] .. ' ' .. id .. ' ' .. received_at, 'EX', ARGV[12])
end
-- The console's counts: records accepted in this slot, and since the data began.
redis.call('INCRBY', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[3], 'ingested', ARGV[5])
return {id, received_at}
"""


class MasterDownError(RefusedError):
    """The stream's master did not answer the append and its WAIT (a 503); a failover may be
    under way."""

    reason = "unavailable"


class ReplicasError(RefusedError):
    """INGEST_WAIT_REPLICAS replicas did not confirm the entry in time (a 503)."""

    reason = "replicas"


class LagBytesError(RefusedError):
    """The stream holds MAX_LAG_BYTES of records not yet processed: it takes no more now."""

    reason = "backpressure_bytes"

    def __init__(self, held: int, limit: int) -> None:
        super().__init__(
            f"the stream holds {held} bytes of records not yet processed (MAX_LAG_BYTES={limit}); "
            "retry later"
        )
        self.held = held


class BackpressureError(RefusedError):
    """The consumer group is too far behind to take more entries now."""

    reason = "backpressure"

    def __init__(self, lag: int, limit: int) -> None:
        super().__init__(f"the stream is {lag} entries behind (MAX_LAG={limit}); retry later")
        self.lag = lag


class StreamWriter:
    """Appends requests to their partition's stream, refusing when its group lags MAX_LAG
    entries or more; with INGEST_WAIT_REPLICAS, only once that many replicas have the entry."""

    def __init__(self, client: AsyncClient, settings: Settings) -> None:
        self.client = client
        self.streams = settings.streams
        self.group = settings.CONSUMER_GROUP
        self.max_lag = settings.MAX_LAG
        self.max_lag_bytes = settings.MAX_LAG_BYTES
        self.replicas = settings.INGEST_WAIT_REPLICAS
        self.url = settings.REDIS_URL
        self.keys = settings.keys
        self.idempotency_ttl_s = settings.IDEMPOTENCY_TTL_S
        # With partitions on a cluster, a key's retry with other records may go to another
        # partition's slot: its first request is claimed in one slot for all.
        self.claims = settings.REDIS_CLUSTER and len(settings.streams) > 1
        self.count_roots = self.keys.accepted_roots()  # each partition's, in its slot
        self.router = Router(len(self.streams))
        self._append = client.register_script(_APPEND)
        self._nodes: dict[str, AsyncRedis] = {}  # stream -> its master's client, with WAIT

    async def append(
        self, model: str, records: list[dict[str, Any]], idempotency: str | None = None
    ) -> Appended:
        """XADD one entry (model, data, received_at), or raise RefusedError; with an
        Idempotency-Key's hash, once (see _APPEND)."""
        partition = self.router.partition(records, idempotency)
        stream = self.streams[partition]
        data = orjson.dumps(records)
        args = [self.group, self.max_lag, model, data, len(records), series.SERIES_TTL_S,
                partition, len(self.streams), self.replicas, self.max_lag_bytes]  # fmt: skip
        at = self.count_roots[partition]
        slot = self.keys.series(series.ACCEPTED, series.slot_of(time.time()), at)
        keys = [stream, slot, self.keys.totals(at), self.keys.lag_bytes(stream)]
        if idempotency is not None:
            request_print = fingerprint(model, data)
            if self.claims:
                await self._claim(idempotency, request_print)
            keys.append(self.keys.idempotency(idempotency, stream))
            args += [request_print, self.idempotency_ttl_s]
        reply = await self._add(stream, keys, args)
        if isinstance(reply, int):
            raise BackpressureError(reply, self.max_lag)
        if isinstance(reply, bytes):  # "replicas <n>", "full <bytes>", "mismatch 0": no append
            raise self._refusal(reply.decode())
        return Appended(reply[0].decode(), int(reply[1]), replayed=len(reply) > 2)

    async def _claim(self, idempotency: str, request_print: str) -> None:
        """Which request the key came with first, in one slot for every partition: another is
        IdempotencyKeyReusedError. (A claim whose append then failed lets the same request in
        again: it adds detection, never a duplicate.)"""
        claim = self.keys.idempotency_claim(idempotency)
        if await self.client.set(claim, request_print, nx=True, ex=self.idempotency_ttl_s):
            return
        if (await self.client.get(claim) or b"").decode() != request_print:
            raise IdempotencyKeyReusedError()

    def _refusal(self, reply: str) -> Exception:
        """The error of a refused append, from the script's word for it."""
        word, number = reply.split()
        if word == "mismatch":
            return IdempotencyKeyReusedError()
        if word == "full":
            return LagBytesError(int(number), self.max_lag_bytes)
        return ReplicasError(
            f"the stream's master has {number} replicas connected, fewer than "
            f"INGEST_WAIT_REPLICAS={self.replicas}; retry later"
        )

    async def _add(self, stream: str, keys: list[str], args: list[Any]) -> Any:
        if not self.replicas:
            return await self._append(keys=keys, args=args)
        # WAIT counts the replicas that have this connection's writes: the script and the WAIT
        # go down one connection to the stream's master (a cluster client would pick any).
        node = await self._node_of(stream)
        try:
            async with node.client() as pinned:
                reply = await self._append(keys=keys, args=args, client=pinned)
                if not isinstance(reply, list):  # refused: nothing appended, nothing to wait for
                    return reply
                confirmed = await pinned.wait(self.replicas, WAIT_MS)
        except (ConnectionError, TimeoutError, MovedError) as error:
            self._nodes.pop(stream, None)  # a failover moved the slot, or is moving it
            if isinstance(self.client, AsyncRedisCluster):
                await self.client.nodes_manager.initialize()
            raise MasterDownError(f"the stream's master did not answer: {error}") from None
        if confirmed < self.replicas:
            raise ReplicasError(
                f"entry {reply[0].decode()} reached {confirmed} of {self.replicas} replicas "
                f"(INGEST_WAIT_REPLICAS) in {WAIT_MS} ms; it may still be processed"
            )
        return reply

    async def _node_of(self, stream: str) -> AsyncRedis:
        """A client of the master holding the stream (the one client, on a single node)."""
        if not isinstance(self.client, AsyncRedisCluster):
            return self.client
        if stream not in self._nodes:
            await self.client.initialize()
            node = self.client.get_node_from_key(stream)
            self._nodes[stream] = connections.node_client(self.url, node.host, node.port)
        return self._nodes[stream]
