"""The app's answers that are not a route's own: JSON bodies, 503s, refused requests."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import ClientDisconnect

from streamfn.core import metrics

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class BodyError(ValueError):
    """The request cannot be accepted; `status` is 4xx, `errors` FastAPI-shaped."""

    status: int
    errors: list[dict[str, Any]]

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid body")
        self.status = status
        self.errors = errors


def json_response(
    content: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON encoded by orjson, skipping FastAPI's response-model pass on the hot path."""
    return Response(orjson.dumps(content), status_code, headers, media_type="application/json")


def unavailable(detail: str, retry_after_s: int = RETRY_AFTER_S) -> Response:
    """A 503 that tells the client when to come back."""
    return json_response(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after_s)}
    )


async def _body_error(request: Request, error: BodyError) -> Response:
    reason = error.errors[0].get("type", "invalid")
    metrics.INGEST_REJECTIONS.labels(reason).inc()
    metrics.INGEST_REQUESTS.labels(str(error.status)).inc()
    return json_response({"detail": error.errors}, status_code=error.status)


async def _gone(request: Request, error: ClientDisconnect) -> Response:
    # The client left mid-body: nothing was appended and nobody reads the answer.
    metrics.INGEST_REJECTIONS.labels("client_disconnect").inc()
    return Response(status_code=400)


async def _redis_down(request: Request, error: RedisError) -> Response:
    # Connection and timeout errors are outages; anything else from Redis is still not the
    # client's fault, and a 503 with Retry-After makes a well-behaved client try again. Redis's
    # own words (a script's hash, a key's name) are for the log, never for the client.
    if isinstance(error, OutOfMemoryError):  # maxmemory reached, with noeviction
        kind, detail = "storage_full", "storage full, retry later"
    elif isinstance(error, RedisConnectionError | RedisTimeoutError):
        kind, detail = "redis_unreachable", f"Redis unreachable; retry in {RETRY_AFTER_S}s"
    else:
        kind, detail = "redis_error", f"Redis error; retry in {RETRY_AFTER_S}s"
    log.warning(kind.replace("_", " "), extra={"path": request.url.path, "error": str(error)})
    metrics.INGEST_REJECTIONS.labels(kind).inc()
    return unavailable(detail)


def install(app: FastAPI) -> None:
    """Answer refused requests and Redis outages the same way on every route."""
    app.add_exception_handler(BodyError, _body_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _gone)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_down)  # type: ignore[arg-type]
