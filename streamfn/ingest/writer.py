"""The ingest side of the stream: append one entry per request, with back-pressure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from streamfn import pipeline_counts as pc

# One round trip: read the group's lag (Redis 7; XLEN where lag is unknown: Redis 6.2, a group
# not created yet, or a lag Redis cannot compute) and XADD only if it is within the limit.
# Returns the new entry's id and receive time (Redis's clock, the id's time part), or the
# lag as an integer when the stream is too far behind.
# Redis can overstate a group's lag for good after an AOF reload or on a promoted replica: the
# replayed XCLAIM ... LASTID moves the group on without its read counter (redis/redis#10569).
# Every entry not yet delivered is still in the stream (trimming stops at the oldest one), so
# XLEN bounds the lag, and a lag over the limit is checked against it before refusing.
_APPEND = """
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
local now = redis.call('TIME')
local received_at = tostring(now[1] * 1000 + math.floor(now[2] / 1000))
-- The id's time part is received_at itself (Redis 7's "<ms>-*"): with '*', Redis reads its clock
-- again and can land a millisecond later. Where that is refused (Redis 6.2, or a clock behind the
-- stream's last id) '*' it is, and the two may differ by that millisecond.
local ok, id = pcall(redis.call, 'XADD', KEYS[1], received_at .. '-*', 'model', ARGV[3],
  'data', ARGV[4], 'received_at', received_at)
if not ok then
  id = redis.call('XADD', KEYS[1], '*', 'model', ARGV[3], 'data', ARGV[4],
    'received_at', received_at)
end
-- The console's counts: records accepted in this slot, and since the data began.
redis.call('INCRBY', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[3], 'ingested', ARGV[5])
return {id, received_at}
"""


class RefusedError(RuntimeError):
    """The stream cannot take the entry now (a 503 with Retry-After); `reason` labels the metric."""

    reason = "unavailable"


class BackpressureError(RefusedError):
    """The consumer group is too far behind to take more entries now."""

    reason = "backpressure"

    def __init__(self, lag: int, limit: int) -> None:
        super().__init__(f"the stream is {lag} entries behind (MAX_LAG={limit}); retry later")
        self.lag = lag


@dataclass(frozen=True, slots=True)
class Appended:
    """An accepted message: its stream id and the time it was received."""

    message_id: str
    received_at: int


class Writer(Protocol):
    """Where ingest appends a request: the Redis Stream, a Kinesis stream or an SQS queue."""

    async def append(self, model: str, records: list[dict[str, Any]]) -> Appended:
        """Append one entry (model, data, received_at) or raise RefusedError."""
        ...


class StreamWriter:
    """Appends requests to the stream, refusing when the group lags MAX_LAG entries or more."""

    def __init__(self, client: Redis, stream: str, group: str, max_lag: int) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.max_lag = max_lag
        self._append = client.register_script(_APPEND)

    async def append(self, model: str, records: list[dict[str, Any]]) -> Appended:
        """XADD one entry (model, data, received_at) or raise BackpressureError."""
        args = [self.group, self.max_lag, model, orjson.dumps(records), len(records),
                pc.SERIES_TTL_S]  # fmt: skip
        keys = [self.stream, pc.series_key(pc.ACCEPTED, pc.slot_of(time.time())), pc.TOTALS_KEY]
        reply = await self._append(keys=keys, args=args)
        if isinstance(reply, int):
            raise BackpressureError(reply, self.max_lag)
        return Appended(reply[0].decode(), int(reply[1]))
