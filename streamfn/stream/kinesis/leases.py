"""How Kinesis pollers share a stream's shards: a lease per shard in Redis, and each shard's
checkpoint (the last sequence number done), moved only by the lease's holder.

Each poller takes its share of the shards among the pollers seen within CLAIM_IDLE_MS. A lease
not renewed within CLAIM_IDLE_MS (its poller died) passes to another poller, which reads from the
checkpoint. All of a stream's keys are in one slot (`Keys.kinesis`), as the scripts need.
"""

from __future__ import annotations

from streamfn.core.clock import now_ms
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys

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
# The checkpoints expire CHECKPOINTS_KEPT_S after the last move: by then Kinesis has dropped
# every record they point to (it keeps them 365 days at most), and a resharded stream's closed
# shards do not stay for ever.
_CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local done = redis.call('HGET', KEYS[2], ARGV[2])
if done and (#done > #ARGV[3] or (#done == #ARGV[3] and done >= ARGV[3])) then return 1 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""
CHECKPOINTS_KEPT_S = 366 * 86_400


class LeaseLostError(RuntimeError):
    """Another poller took the shard while this one worked on it."""


class Leases:
    """One poller's leases on one stream's shards, and their checkpoints."""

    def __init__(
        self, redis: SyncClient, keys: Keys, stream: str, consumer: str, ttl_ms: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.stream = stream
        self.consumer = consumer
        self.ttl_ms = ttl_ms
        self.checkpoints_key = keys.kinesis(stream, "checkpoints")
        self.pollers_key = keys.kinesis(stream, "pollers")
        self.held: set[str] = set()
        self._lease = redis.register_script(_LEASE)
        self._move = redis.register_script(_CHECKPOINT)
        self._renew = redis.register_script(_RENEW)

    def lease_key(self, shard_id: str) -> str:
        """The key of one shard's lease."""
        return self.keys.kinesis(self.stream, f"lease:{shard_id}")

    def hold(self, shard_id: str, shards: int, idle: bool) -> bool:
        """Whether this poller holds the shard now: renewed, taken, or given up (see _LEASE)."""
        args = [self.consumer, self.ttl_ms, now_ms(), shards, len(self.held), "1" if idle else "0"]
        if self._lease(keys=[self.lease_key(shard_id), self.pollers_key], args=args):
            self.held.add(shard_id)
            return True
        self.held.discard(shard_id)
        return False

    def renew(self, shard_id: str) -> None:
        """Keep a held lease alive (a beat while a batch is invoked)."""
        self._renew(keys=[self.lease_key(shard_id)], args=[self.consumer, self.ttl_ms])

    def move(self, shard_id: str, sequence: str) -> None:
        """Move the shard's checkpoint forward to `sequence` (done); LeaseLostError if another
        poller holds the shard now."""
        keys = [self.lease_key(shard_id), self.checkpoints_key]
        if not self._move(keys=keys, args=[self.consumer, shard_id, sequence, CHECKPOINTS_KEPT_S]):
            raise LeaseLostError(shard_id)

    def checkpoint(self, shard_id: str) -> str | None:
        """The last sequence number done of a shard (None: none yet)."""
        done = self.redis.hget(self.checkpoints_key, shard_id)
        return None if done is None else done.decode()
