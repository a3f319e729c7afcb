"""GET /health and GET /metrics: whether the ingest can take requests, and its counters."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamfn import __version__
from streamfn.api.deps import RedisDep
from streamfn.api.responses import json_response
from streamfn.ingest.openapi import HEALTH, METRICS, REDIS_DOWN

router = APIRouter()


@router.get(
    "/health",
    summary="200 when Redis answers, else 503",
    responses={200: {"content": {"application/json": {"schema": HEALTH}}}, **REDIS_DOWN},
)
async def health(redis: RedisDep) -> Response:
    """200 with the version when Redis answers PING (a Redis error answers 503)."""
    client, _ = redis.bind()
    await client.ping()
    return json_response({"status": "ok", "redis": "ok", "version": __version__})


@router.get("/metrics", summary="Prometheus text format", responses=METRICS)
async def prometheus() -> Response:
    """This process's Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
