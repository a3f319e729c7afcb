"""Recording messages done and counting their rows in one atomic step (a Lua script).

The script sets each message's state to done and adds the window counts and the console's counts
(streamfn.sink.counts), unless one of the messages is done already (another poller finished
it meanwhile): then it changes nothing and names those, and the caller counts again without
them. So a row is counted with the write that records its message done, and never on a
redelivery that finds it done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from streamfn.core import series
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys
from streamfn.core.message_state import MessageState
from streamfn.sink.counts import CONSOLE_KEPT_S, Tally, day_score


@dataclass(frozen=True)
class Window:
    """One window's counts to add: which model, version and start, and field -> increment."""

    model: str
    version: str
    start: int
    fields: Counter[str]


# Every key it writes expires: the window hashes and their index after `retention` (the index
# also drops members that old), the set of open windows after twice that, the console's hashes
# and its set of dates CONSOLE_KEPT_S after their last write (the set drops dates that old).
# KEYS: the n result keys, the w window hashes, the w index sets of their models, the set of open
# windows; then the console's: the written-records slot counter, the totals hash, the model's
# versions hash, then per partition its hash and the set of partitions.
# ARGV: ttl, retention, n, w, p, the n states (JSON); per window: start, its member in the index,
# its member in the open set, number of fields, then field, increment, ...; then rows, the slot
# counter's ttl, version, at (ms), the console's keep (s); per partition: member, score (a day's
# ordinal), objects, rows, newest key.
_DONE_AND_COUNT = """
local ttl, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local n, w, p = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local done = {}
for i = 1, n do
  local current = redis.call('GET', KEYS[i])
  if current and string.find(current, '"status":"done"', 1, true) then
    table.insert(done, KEYS[i])
  end
end
if #done > 0 then return done end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[5 + i], 'EX', ttl)
end
local arg = 6 + n
local open = KEYS[n + 2 * w + 1]
for i = 1, w do
  local hash, index = KEYS[n + i], KEYS[n + w + i]
  local start, member, opened = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2]
  local fields = tonumber(ARGV[arg + 3])
  arg = arg + 4
  for f = 1, fields do
    redis.call('HINCRBY', hash, ARGV[arg], ARGV[arg + 1])
    arg = arg + 2
  end
  redis.call('EXPIRE', hash, retention)
  redis.call('ZADD', index, start, member)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(start) - retention))
  redis.call('EXPIRE', index, retention)
  redis.call('ZADD', open, start, opened)
  redis.call('EXPIRE', open, 2 * retention)
end
local k = n + 2 * w + 2
local rows, kept = tonumber(ARGV[arg]), tonumber(ARGV[arg + 4])
if rows > 0 then
  redis.call('INCRBY', KEYS[k], rows)
  redis.call('EXPIRE', KEYS[k], ARGV[arg + 1])
  redis.call('HINCRBY', KEYS[k + 1], 'written', rows)
  redis.call('HSETNX', KEYS[k + 2], ARGV[arg + 2], ARGV[arg + 3])
  redis.call('EXPIRE', KEYS[k + 2], kept)
end
arg = arg + 5
for i = 1, p do
  local hash, set = KEYS[k + 1 + 2 * i], KEYS[k + 2 + 2 * i]
  redis.call('HINCRBY', hash, 'objects', ARGV[arg + 2])
  redis.call('HINCRBY', hash, 'rows', ARGV[arg + 3])
  local newest = redis.call('HGET', hash, 'newest')
  if not newest or newest < ARGV[arg + 4] then redis.call('HSET', hash, 'newest', ARGV[arg + 4]) end
  redis.call('EXPIRE', hash, kept)
  redis.call('ZADD', set, ARGV[arg + 1], ARGV[arg])
  local oldest = tonumber(ARGV[arg + 1]) - math.floor(kept / 86400)
  redis.call('ZREMRANGEBYSCORE', set, '-inf', '(' .. oldest)
  redis.call('EXPIRE', set, kept)
  arg = arg + 5
end
return {}
"""


class DoneRecorder:
    """Records messages done and adds their counts, atomically.

    On a Redis Cluster with partitions (`split`) the states and the counts are in different
    slots, and no script may touch both: the same script runs twice, first with the states
    alone (a message's keys are in its partition's slot), then with the counts alone. A crash
    or a Redis error between the two leaves those rows uncounted; never counted twice."""

    def __init__(
        self, redis: SyncClient, keys: Keys, ttl_s: int, retention_s: int, split: bool = False
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.retention_s = retention_s
        self.split = split
        self._script = redis.register_script(_DONE_AND_COUNT)

    def record(
        self,
        states: Sequence[tuple[str, MessageState]],
        windows: Sequence[Window],
        tally: Tally,
    ) -> set[str]:
        """Set the states and add the counts; the ids already done (nothing changed) if any."""
        keys = [self.keys.result(i) for i, _ in states]
        ids = dict(zip(keys, (i for i, _ in states), strict=True))
        state_args = [orjson.dumps({k: v for k, v in s.items() if v is not None})
                      for _, s in states]  # fmt: skip
        count_keys, count_args, parts = self._counts(windows, tally)
        header = [self.ttl_s, self.retention_s, len(states)]
        if not self.split:
            args = [*header, len(windows), parts, *state_args, *count_args]
            done = self._script(keys=[*keys, *count_keys], args=args)
            return {ids[key.decode()] for key in done}
        # No rows, no windows.
        nothing = [0, series.SERIES_TTL_S, tally.version, tally.at_ms, CONSOLE_KEPT_S]
        done = self._script(keys=keys, args=[*header, 0, 0, *state_args, *nothing])
        if done:
            return {ids[key.decode()] for key in done}
        args = [self.ttl_s, self.retention_s, 0, len(windows), parts, *count_args]
        self._script(keys=count_keys, args=args)
        return set()

    def _counts(
        self, windows: Sequence[Window], tally: Tally
    ) -> tuple[list[str], list[object], int]:
        """The keys and arguments of the counts, after the states', and the partitions."""
        parts = sorted(tally.partitions.items())
        k = self.keys
        keys = [k.window(w.model, w.version, w.start) for w in windows]
        keys += [k.window_index(w.model) for w in windows] + [k.open_windows()]
        slot = k.series(series.WRITTEN, series.slot_of(tally.at_ms / 1000))
        keys += [slot, k.totals(), k.versions(tally.model)]
        for day, _ in parts:
            keys += [k.objects(tally.model, day), k.object_days()]
        args: list[object] = []
        for window in windows:
            member = f"{window.version}:{window.start}"
            args += [window.start, member, f"{window.model}:{member}", len(window.fields)]
            for field, increment in window.fields.items():
                args += [field, increment]
        args += [tally.rows, series.SERIES_TTL_S, tally.version, tally.at_ms, CONSOLE_KEPT_S]
        for day, part in parts:
            args += [f"{tally.model}/{day}", day_score(day), part.objects, part.rows,
                     part.newest]  # fmt: skip
        return keys, args, len(parts)
