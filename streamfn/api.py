"""The ingest function's FastAPI app: validate at the door, append to the stream, report state."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Annotated, Any

import httpx
import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import ClientDisconnect

from streamfn import __version__, metrics
from streamfn.config import Settings, get_settings
from streamfn.constants import API_NAMES, REGISTERED_MODELS
from streamfn.features import CLASS_LABELS
from streamfn.schema import BodyError, parse_body
from streamfn.stream import BackpressureError, StreamWriter, message_state

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1

EXAMPLE_BODY = {
    "data": [
        {"Designation": 1.5, "Resource_Allocation": 1.7, "Sleep_Hours": 7},
        {
            "Employee ID": "fffe32003000360033003200",
            "Gender": "Female",
            "Company Type": "Service",
            "WFH Setup Available": "No",
            "Designation": 2,
            "Resource Allocation": 3,
            "Mental Fatigue Score": 3.8,
            "Work Hours per Week": 40,
            "Sleep Hours": 7.2,
            "Work-Life Balance Score": 4,
            "Manager Support Score": 4,
            "Deadline Pressure Score": 2,
            "Team Size": 9,
            "Recognition Frequency": 3,
        },
    ]
}
# POST /predict_stream reads its query and header itself (FastAPI's dependency resolution cost a
# quarter of a 1-record request): the OpenAPI document describes them here instead.
PREDICT_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "model",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": list(API_NAMES)},
            "description": "the model that predicts these records",
        },
        {
            "name": "X-API-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "required when the server has INGEST_API_KEY set",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": {"type": "object"}}},
                },
                "example": EXAMPLE_BODY,
            }
        },
    },
}


class RedisBinding:
    """The app's Redis client and stream writer, made anew if the event loop changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client: Redis | None = None
        self.writer: StreamWriter | None = None

    def bind(self) -> tuple[Redis, StreamWriter]:
        """The client and writer of the running loop (Mangum and tests may change loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self.client is None or self.writer is None:
            s = self.settings
            self.client = Redis.from_url(
                s.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, retry_on_timeout=False
            )
            self.writer = StreamWriter(self.client, s.STREAM_KEY, s.CONSUMER_GROUP, s.MAX_LAG)
            self._loop = loop
        return self.client, self.writer


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, a thread hop
# per request that cost ~25% of the 1-record throughput.
async def _binding(request: Request) -> RedisBinding:
    return request.app.state.redis


RedisDep = Annotated[RedisBinding, Depends(_binding)]


def check_api_key(request: Request, settings: Settings) -> None:
    """With INGEST_API_KEY set, refuse requests without the matching X-API-Key header (401)."""
    expected = settings.INGEST_API_KEY
    if expected is None:
        return
    sent = request.headers.get("x-api-key")
    if sent is None or not secrets.compare_digest(
        sent.encode(), expected.get_secret_value().encode()
    ):
        metrics.INGEST_REJECTIONS.labels("unauthorized").inc()
        raise HTTPException(401, "missing or wrong X-API-Key", {"WWW-Authenticate": "ApiKey"})


def model_of(request: Request) -> str:
    """The `model` query value, or a 422 that lists the valid names."""
    value = request.query_params.get("model")
    if value in REGISTERED_MODELS:
        return value
    valid = ", ".join(repr(name) for name in API_NAMES)
    if value is None:
        error = {"loc": ["query", "model"], "msg": f"'model' is required: one of {valid}"}
        raise BodyError(422, [{**error, "type": "missing"}])
    error = {"loc": ["query", "model"], "msg": f"'model' must be one of {valid}, not {value!r}"}
    raise BodyError(422, [{**error, "type": "enum", "input": value[:200]}])


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON body, refused (415, 413) on a wrong type or as soon as it exceeds `limit` bytes."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        error = {"loc": ["header", "content-type"], "type": "unsupported_media_type"}
        error["msg"] = f"Content-Type must be application/json, not {media_type or 'none'!r}"
        raise BodyError(415, [error])
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, [_too_large(limit)])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, [_too_large(limit)])
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> dict[str, Any]:
    return {"loc": ["body"], "msg": f"body over MAX_BODY_BYTES={limit} bytes", "type": "too_large"}


def json_response(
    content: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON encoded by orjson, skipping FastAPI's response-model pass on the hot path."""
    return Response(orjson.dumps(content), status_code, headers, media_type="application/json")


def unavailable(detail: str) -> Response:
    """A 503 that tells the client when to come back."""
    return json_response(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


async def alias_version(uri: str, name: str, alias: str) -> dict[str, Any]:
    """The version `alias` points to in an MLflow server's registry (REST, no mlflow import)."""
    entry: dict[str, Any] = {"registered_name": name, "alias": alias, "version": None}
    if not uri.startswith(("http://", "https://")):
        return {**entry, "error": "the registry is not an HTTP server; ask the infer function"}
    base = f"{uri.rstrip('/')}/api/2.0/mlflow/registered-models"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            found = await client.get(f"{base}/alias", params={"name": name, "alias": alias})
            if found.status_code == 200:
                return {**entry, "version": found.json()["model_version"]["version"]}
            model = await client.get(f"{base}/get", params={"name": name})
    except httpx.HTTPError as error:
        return {**entry, "error": f"MLflow unreachable: {error}"}
    if model.status_code != 200:
        return {**entry, "error": "not registered: run `streamfn train`"}
    versions = [
        int(v["version"]) for v in model.json()["registered_model"].get("latest_versions", [])
    ]
    latest = str(max(versions)) if versions else None
    return {**entry, "version": latest, "error": f"alias {alias!r} absent; latest version served"}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ingest app; the same object runs under uvicorn and, wrapped by Mangum, on Lambda."""
    settings = settings or get_settings()
    app = FastAPI(
        title="streamfn ingest",
        version=__version__,
        description="Validates records and appends them to the Redis Stream for batched inference.",
    )
    binding = RedisBinding(settings)
    app.state.settings = settings
    app.state.redis = binding

    @app.exception_handler(BodyError)
    async def _body_error(request: Request, error: BodyError) -> Response:
        reason = error.errors[0].get("type", "invalid")
        metrics.INGEST_REJECTIONS.labels(reason).inc()
        metrics.INGEST_REQUESTS.labels(str(error.status)).inc()
        return json_response({"detail": error.errors}, status_code=error.status)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, error: ClientDisconnect) -> Response:
        # The client left mid-body: nothing was appended and nobody reads the answer.
        metrics.INGEST_REJECTIONS.labels("client_disconnect").inc()
        return Response(status_code=400)

    @app.exception_handler(RedisError)
    async def _redis_down(request: Request, error: RedisError) -> Response:
        # Connection and timeout errors are outages; anything else from Redis is still not the
        # client's fault, and a 503 with Retry-After makes a well-behaved client try again.
        kind = (
            "unreachable"
            if isinstance(error, RedisConnectionError | RedisTimeoutError)
            else "error"
        )
        log.warning("redis %s", kind, extra={"path": request.url.path, "error": str(error)})
        metrics.INGEST_REJECTIONS.labels("redis_" + kind).inc()
        return unavailable(f"Redis {kind}: {error}; retry in {RETRY_AFTER_S}s")

    @app.post(
        "/predict_stream",
        status_code=202,
        openapi_extra=PREDICT_DOC,
        summary="Validate records and append them to the stream",
        responses={
            413: {"description": "too many records or bytes"},
            503: {"description": "retry"},
        },
    )
    async def predict_stream(request: Request) -> Response:
        started = time.perf_counter()
        check_api_key(request, settings)
        model = model_of(request)
        records = parse_body(
            await read_body(request, settings.MAX_BODY_BYTES), settings.MAX_RECORDS
        )
        _, writer = binding.bind()
        try:
            appended = await writer.append(model, records)
        except BackpressureError as error:
            metrics.INGEST_REJECTIONS.labels("backpressure").inc()
            return unavailable(str(error))
        metrics.INGEST_RECORDS.labels(model).inc(len(records))
        metrics.INGEST_REQUESTS.labels("202").inc()
        metrics.INGEST_LATENCY.observe(time.perf_counter() - started)
        root = request.scope.get("root_path", "")
        return json_response(
            {
                "message_id": appended.message_id,
                "model": model,
                "records": len(records),
                "status_url": f"{root}/predictions/{appended.message_id}",
            },
            status_code=202,
        )

    @app.get("/predictions/{message_id}", summary="The state and result of one message")
    async def get_prediction(
        message_id: Annotated[str, Path(examples=["1732600000000-0"])], redis: RedisDep
    ) -> Response:
        client, _ = redis.bind()
        state = await message_state(client, settings.STREAM_KEY, message_id)
        if state is None:
            raise HTTPException(
                404, f"no message {message_id!r} was accepted (or its result expired)"
            )
        predictions = state.get("predictions")
        return json_response(
            {
                "message_id": message_id,
                "status": state["status"],
                "model": state.get("model"),
                "model_version": state.get("model_version"),
                "predictions": predictions,
                "labels": [CLASS_LABELS[p] for p in predictions] if predictions else None,
                "object": state.get("object"),
                "error": state.get("error"),
            }
        )

    @app.get("/health", summary="200 when Redis answers, else 503")
    async def health(redis: RedisDep) -> Response:
        client, _ = redis.bind()
        await client.ping()
        return json_response({"status": "ok", "redis": "ok", "version": __version__})

    @app.get("/models", summary="API names, registered names and the alias's version")
    async def models() -> Response:
        lookups = [
            alias_version(
                settings.MLFLOW_TRACKING_URI, REGISTERED_MODELS[name], settings.MODEL_ALIAS
            )
            for name in API_NAMES
        ]
        found = await asyncio.gather(*lookups)
        return json_response(
            {"models": [{"model": n, **f} for n, f in zip(API_NAMES, found, strict=True)]}
        )

    @app.get("/metrics", summary="Prometheus text format")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
