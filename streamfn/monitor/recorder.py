"""Recording messages done and counting their rows in one atomic step (a Lua script).

The script sets each message's state to done and adds the window counts, unless one of the
messages is done already (another poller finished it meanwhile): then it changes nothing and
names those, and the caller counts again without them. So a row is counted with the write that
records its message done, and never on a redelivery that finds it done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis import Redis

from streamfn.constants import result_key
from streamfn.message_state import MessageState
from streamfn.monitor.counts import KEY_PREFIX, index_key, window_key

OPEN_KEY = f"{KEY_PREFIX}open"  # sorted set of model:version:start, scored by start


@dataclass(frozen=True)
class Window:
    """One window's counts to add: which model, version and start, and field -> increment."""

    model: str
    version: str
    start: int
    fields: Counter[str]


# KEYS: the result keys, then the window hashes, then the index sets of the windows' models,
# then the set of open windows. ARGV: ttl, retention, number of messages, their states (JSON),
# then per window: start, its member in the index, its member in the open set, number of
# fields, then field, increment, ...
_DONE_AND_COUNT = """
local ttl, retention, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local done = {}
for i = 1, n do
  local current = redis.call('GET', KEYS[i])
  if current and string.find(current, '"status":"done"', 1, true) then
    table.insert(done, KEYS[i])
  end
end
if #done > 0 then return done end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[3 + i], 'EX', ttl)
end
local arg = 4 + n
local windows = (#KEYS - n - 1) / 2
local open = KEYS[#KEYS]
for w = 1, windows do
  local hash, index = KEYS[n + w], KEYS[n + windows + w]
  local start, member, opened = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2]
  local fields = tonumber(ARGV[arg + 3])
  arg = arg + 4
  for f = 1, fields do
    redis.call('HINCRBY', hash, ARGV[arg], ARGV[arg + 1])
    arg = arg + 2
  end
  redis.call('EXPIRE', hash, retention)
  redis.call('ZADD', index, start, member)
  redis.call('ZADD', open, start, opened)
end
return {}
"""


class DoneRecorder:
    """Records messages done and adds their counts, atomically."""

    def __init__(self, redis: Redis, ttl_s: int, retention_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.retention_s = retention_s
        self._script = redis.register_script(_DONE_AND_COUNT)

    def record(
        self, states: Sequence[tuple[str, MessageState]], windows: Sequence[Window]
    ) -> set[str]:
        """Set the states and add the counts; the ids already done (nothing changed) if any."""
        keys = [result_key(i) for i, _ in states]
        keys += [window_key(w.model, w.version, w.start) for w in windows]
        keys += [index_key(w.model) for w in windows] + [OPEN_KEY]
        args: list[object] = [self.ttl_s, self.retention_s, len(states)]
        args += [orjson.dumps({k: v for k, v in s.items() if v is not None}) for _, s in states]
        for window in windows:
            member = f"{window.version}:{window.start}"
            args += [window.start, member, f"{window.model}:{member}", len(window.fields)]
            for field, increment in window.fields.items():
                args += [field, increment]
        done = self._script(keys=keys, args=args)
        return {key.decode().removeprefix(result_key("")) for key in done}
