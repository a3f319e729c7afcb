"""What every route shares: the settings and the Redis client of the running event loop."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request

from streamfn.core import connections
from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.ingest.schema_cache import SchemaCache
from streamfn.ingest.writer import StreamWriter, Writer


class RedisBinding:
    """The app's Redis client and stream writer, made anew if the event loop changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client: AsyncClient | None = None
        self.writer: Writer | None = None
        self._aws: Any = None  # the Kinesis or SQS client: not bound to a loop, made once

    def bind(self) -> tuple[AsyncClient, Writer]:
        """The client and writer of the running loop (Mangum and tests may change loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self.client is None or self.writer is None:
            s = self.settings
            self.client = connections.request_client(s.REDIS_URL, s.REDIS_CLUSTER)
            if s.STREAM_BACKEND == "redis":
                self.writer = StreamWriter(self.client, s)
            else:
                # Imported here: boto3 is needed only then (Lambda's runtime has it; the zip not).
                from streamfn.ingest import aws_writers

                self._aws = self._aws or aws_writers.aws_client(s)
                self.writer = aws_writers.aws_writer(s, self._aws, self.client)
            self._loop = loop
        return self.client, self.writer


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, a thread hop
# per request that cost ~25% of the 1-record throughput.
async def _binding(request: Request) -> RedisBinding:
    return request.app.state.redis


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _schemas(request: Request) -> SchemaCache:
    return request.app.state.schemas


RedisDep = Annotated[RedisBinding, Depends(_binding)]
SettingsDep = Annotated[Settings, Depends(_settings)]
SchemasDep = Annotated[SchemaCache, Depends(_schemas)]
