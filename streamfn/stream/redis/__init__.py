"""The Redis Stream backend (STREAM_BACKEND=redis, the default): ingest appends with one Lua
script per request (streamfn.stream.redis.writer), pollers read the consumer group's batches
(streamfn.stream.redis.source). It runs wherever Redis does: nothing to emulate locally."""

from __future__ import annotations

from streamfn.core import connections
from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.stream.base import SourceOptions
from streamfn.stream.redis.source import RedisSource
from streamfn.stream.redis.writer import StreamWriter


class RedisBackend:
    """The Redis Stream, as a `streamfn.stream.base.Backend`."""

    def writer(self, settings: Settings, redis: AsyncClient) -> StreamWriter:
        """Appends to the partitions' streams through ingest's own Redis client."""
        return StreamWriter(redis, settings)

    def source(self, options: SourceOptions) -> RedisSource:
        """The group's consumer on each partition chosen, through a worker's client."""
        s = options.settings
        client = connections.worker_client(s.REDIS_URL, s.REDIS_CLUSTER)
        return RedisSource(s, client, options.consumer, options.partitions, options.checkpoint)

    def local_variables(self, endpoint: str) -> dict[str, str]:
        """None: Redis itself is the stream."""
        return {}

    def create_local(self, settings: Settings) -> None:
        """Nothing to create: the poller makes the group (and the stream) when it starts."""


BACKEND = RedisBackend()
