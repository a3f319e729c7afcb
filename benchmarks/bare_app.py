"""The yardstick for the ingest benchmark: a FastAPI endpoint that only XADDs the raw body."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from redis.asyncio import Redis

from streamfn.config import get_settings

app = FastAPI()
redis = Redis.from_url(get_settings().REDIS_URL)


@app.post("/predict_stream")
async def predict_stream(request: Request, model: str) -> Response:
    """No validation, no lag check: the cost of HTTP + one XADD and nothing else."""
    entry_id = await redis.xadd("bare_stream", {"model": model, "data": await request.body()})
    return Response(b'{"message_id":"' + entry_id + b'"}', 202, media_type="application/json")
