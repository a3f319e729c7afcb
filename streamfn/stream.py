"""Redis Stream access for the ingest side: append with back-pressure, find a message's state."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from streamfn.constants import result_key

# One round trip: read the group's lag (Redis 7; XLEN where lag is unknown: Redis 6.2, a group
# not created yet, or a lag Redis cannot compute) and XADD only if it is within the limit.
# Returns the new entry's id and receive time (Redis's clock, so it agrees with the id), or the
# lag as an integer when the stream is too far behind.
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
if lag >= tonumber(ARGV[2]) then return lag end
local now = redis.call('TIME')
local received_at = tostring(now[1] * 1000 + math.floor(now[2] / 1000))
local id = redis.call('XADD', KEYS[1], '*', 'model', ARGV[3], 'data', ARGV[4],
  'received_at', received_at)
return {id, received_at}
"""

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class BackpressureError(RuntimeError):
    """The consumer group is too far behind to take more entries now."""

    def __init__(self, lag: int, limit: int) -> None:
        super().__init__(f"the stream is {lag} entries behind (MAX_LAG={limit}); retry later")
        self.lag = lag


@dataclass(frozen=True, slots=True)
class Appended:
    """An accepted message: its stream id and the time it was received."""

    message_id: str
    received_at: int


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
        args = [self.group, self.max_lag, model, orjson.dumps(records)]
        reply = await self._append(keys=[self.stream], args=args)
        if isinstance(reply, int):
            raise BackpressureError(reply, self.max_lag)
        return Appended(reply[0].decode(), int(reply[1]))


def is_stream_id(text: str) -> bool:
    """Whether `text` has the shape of a Redis stream id (ms-seq)."""
    return _STREAM_ID.match(text) is not None


async def message_state(client: Redis, stream: str, message_id: str) -> dict[str, Any] | None:
    """The stored result of a message, {"status": "pending"} while in the stream, else None."""
    if not is_stream_id(message_id):
        return None
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(result_key(message_id))
        pipe.xrange(stream, message_id, message_id, count=1)
        stored, entries = await pipe.execute()
    if stored is not None:
        return orjson.loads(stored)
    if entries:
        fields = entries[0][1]
        return {"status": "pending", "model": fields.get(b"model", b"").decode()}
    return None
