"""The yardstick for ingest: a bare FastAPI endpoint that parses the body and XADDs its data.

What a minimal, unvalidated ingest does: JSON in, one XADD, 202 out. Run under uvicorn by the
benchmark: `uvicorn --factory streamfn.bench.bare:create_app`.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.asyncio import Redis

from streamfn.core.environment import get_settings


def create_app() -> FastAPI:
    """The bare endpoint, on the Redis and stream of this process's settings."""
    settings = get_settings()
    client = Redis.from_url(settings.REDIS_URL)
    app = FastAPI()

    @app.post("/predict_stream")
    async def predict_stream(request: Request, model: str) -> Response:
        body = orjson.loads(await request.body())
        message_id = await client.xadd(
            settings.STREAM_KEY, {"model": model, "data": orjson.dumps(body["data"])}
        )
        return Response(orjson.dumps({"message_id": message_id.decode()}), 202)

    @app.get("/health")
    async def health() -> Response:
        await client.ping()
        return Response(b'{"status": "ok"}', 200)

    return app
