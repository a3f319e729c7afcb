"""POST /predict_stream: validate at the door, append to the stream, answer 202."""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from streamfn.core import metrics
from streamfn.core.settings import Settings
from streamfn.ingest.refusals import BodyError
from streamfn.ingest.responses import json_response, unavailable
from streamfn.ingest.schema_cache import ModelUnavailableError
from streamfn.ingest.writer import RefusedError

router = APIRouter()


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


def model_of(request: Request, settings: Settings) -> str:
    """The `model` query value, or a 422 that lists the valid names."""
    value = request.query_params.get("model")
    if value is None:
        valid = ", ".join(repr(name) for name in settings.models)
        error = {"loc": ["query", "model"], "msg": f"'model' is required: one of {valid}"}
        raise BodyError(422, [{**error, "type": "missing"}])
    return known_model(value, settings)


def known_model(value: str, settings: Settings) -> str:
    """A configured model's API name, or a 422 that lists the valid names."""
    if value in settings.models:
        return value
    valid = ", ".join(repr(name) for name in settings.models)
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


# Described in the OpenAPI document by streamfn.ingest.openapi (from the models' schemas).
@router.post("/predict_stream", status_code=202)
async def predict_stream(request: Request) -> Response:
    """Validate the records for the model and append them to the stream as one entry."""
    started = time.perf_counter()
    settings: Settings = request.app.state.settings
    check_api_key(request, settings)
    model = model_of(request, settings)
    client, writer = request.app.state.redis.bind()
    try:
        validator = await request.app.state.schemas.validator(model, client)
    except ModelUnavailableError as error:
        metrics.INGEST_REJECTIONS.labels("model_unavailable").inc()
        return unavailable(str(error), error.retry_after_s)
    body = await read_body(request, settings.MAX_BODY_BYTES)
    records = validator.parse_body(body, settings.MAX_RECORDS)
    try:
        appended = await writer.append(model, records)
    except RefusedError as error:  # the group lags MAX_LAG, or Kinesis or SQS throttles
        metrics.INGEST_REJECTIONS.labels(error.reason).inc()
        return unavailable(str(error))
    metrics.INGEST_RECORDS.labels(model).inc(len(records))
    metrics.INGEST_REQUESTS.labels("202").inc()
    metrics.INGEST_LATENCY.observe(time.perf_counter() - started)
    status_url = f"{request.scope.get('root_path', '')}/predictions/{appended.message_id}"
    reply = {"message_id": appended.message_id, "model": model, "records": len(records),
             "status_url": status_url}  # fmt: skip
    return json_response(reply, status_code=202)
