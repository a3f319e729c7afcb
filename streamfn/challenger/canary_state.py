"""Where a canary's state lives, and the lock of the command that drives it.

The state is kept in Redis, where the pollers read the share (streamfn.core.canaries), and in
the challenger version's MLflow tag `streamfn.canary`, the record a restarted command falls
back on if Redis lost it. Two `streamfn canary` commands of one model refuse each other by a
Redis lock with an expiry: the one running renews it every pass, so a command that died frees
the model within LOCK_S.
"""

from __future__ import annotations

import json
import os
import socket
import uuid

import orjson

from streamfn.challenger.gate import TAG, Gate
from streamfn.core.canaries import ROLLBACKS, Canary
from streamfn.core.clock import now_ms
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys

LOCK_S = 10
STATE_TAG = "canary"  # under gate.TAG: streamfn.canary

# Renew or release only the lock this command holds (another may have taken it once it
# expired); one that expired and that nobody took (an outage longer than LOCK_S) is taken again.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class CanaryLockedError(RuntimeError):
    """Another `streamfn canary` command drives this model's canary (or did until lately)."""


class CanaryLock:
    """The lock of one model's canary, held by this command while it runs."""

    def __init__(self, redis: SyncClient, key: str) -> None:
        self.redis = redis
        self.key = key
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since_ms": now_ms(),
                  "id": uuid.uuid4().hex}  # fmt: skip
        self.owner = orjson.dumps(holder).decode()

    def take(self) -> None:
        """Hold the lock, or CanaryLockedError naming who holds it."""
        if self.redis.set(self.key, self.owner, nx=True, ex=LOCK_S):
            return
        raw = self.redis.get(self.key)
        holder = orjson.loads(raw) if raw else {}
        ttl = self.redis.ttl(self.key)
        raise CanaryLockedError(
            f"another `streamfn canary` drives this model's canary (pid {holder.get('pid')} on "
            f"{holder.get('host')}); its lock {self.key} expires {max(ttl, 0)} s after it stops "
            "renewing it"
        )

    def renew(self) -> None:
        """Keep the lock another LOCK_S; CanaryLockedError if another command took it."""
        if not self.redis.eval(_RENEW, 1, self.key, self.owner, LOCK_S):
            raise CanaryLockedError(
                f"the lock {self.key} expired (this command was stopped or cut off longer than "
                f"{LOCK_S} s) and another command holds it now: stopping, the share as it is"
            )

    def release(self) -> None:
        """Let go of the lock, if it is still ours."""
        self.redis.eval(_RELEASE, 1, self.key, self.owner)


class CanaryStore:
    """One model's canary state in Redis and in its challenger version's tags."""

    def __init__(self, redis: SyncClient, keys: Keys, gate: Gate, model: str) -> None:
        self.redis = redis
        self.key = keys.canary(model)
        self.gate = gate

    def read(self, challenger: str) -> Canary | None:
        """The canary of this challenger version: Redis's, else its tag's; None if none."""
        found = Canary.from_hash(self.redis.hgetall(self.key))
        if found is not None and found.version == challenger:
            return found
        tags = self.gate.client.get_model_version(self.gate.name, challenger).tags
        recorded = tags.get(TAG + STATE_TAG)
        return Canary.from_hash(json.loads(recorded)) if recorded else None

    def current(self) -> Canary | None:
        """Whatever canary Redis holds for the model (of any version)."""
        return Canary.from_hash(self.redis.hgetall(self.key))

    def save(self, canary: Canary, tag: bool = True) -> None:
        """Keep the state in Redis (the pollers read the share within their refresh) and, with
        `tag`, as the challenger version's tag."""
        fields = canary.to_hash()
        self.redis.hset(self.key, mapping=fields)
        if tag:
            self.gate.tag(canary.version, {STATE_TAG: json.dumps(fields)})

    def count_rollback(self) -> int:
        """Count one more rollback of the model (the pollers publish the count)."""
        return int(self.redis.hincrby(self.key, ROLLBACKS, 1))
