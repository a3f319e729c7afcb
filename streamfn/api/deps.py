"""What every route shares: the settings, and the Redis client and stream writer of the running
event loop (`Annotated` dependencies)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from streamfn.core import connections
from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.stream.base import Writer, backend


class RedisBinding:
    """The app's Redis client and stream writer (STREAM_BACKEND's), made anew if the event loop
    changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client: AsyncClient | None = None
        self.writer: Writer | None = None

    def bind(self) -> tuple[AsyncClient, Writer]:
        """The client and writer of the running loop (Mangum and tests may change loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self.client is None or self.writer is None:
            s = self.settings
            self.client = connections.request_client(s.REDIS_URL, s.REDIS_CLUSTER)
            self.writer = backend(s.STREAM_BACKEND).writer(s, self.client)
            self._loop = loop
        return self.client, self.writer


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, a thread hop
# per request that cost ~25% of the 1-record throughput.
async def _binding(request: Request) -> RedisBinding:
    return request.app.state.redis


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


RedisDep = Annotated[RedisBinding, Depends(_binding)]
SettingsDep = Annotated[Settings, Depends(_settings)]
