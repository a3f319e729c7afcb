"""POST /predict_stream: validate at the door, append to the stream, answer 202.

A client that retries (a timeout, a 503 after a failover) sends the same `Idempotency-Key`
header: within IDEMPOTENCY_TTL_S the same key and request get the first answer again, with
`Idempotent-Replayed: true`, and nothing is appended; the same key with another request is 422.
The key is kept as a hash of it (it may hold anything printable; Redis keys stay short).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from streamfn.api.inputs import known_model, read_body
from streamfn.api.responses import BodyError, json_response, unavailable
from streamfn.core import metrics
from streamfn.core.settings import Settings
from streamfn.ingest.schema_cache import ModelUnavailableError
from streamfn.ingest.validation import PRESCAN_BYTES, Record, Validator
from streamfn.stream.base import (
    EntryTooLargeError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    RefusedError,
)

router = APIRouter()
IDEMPOTENCY_HEADER = "idempotency-key"
# 1 to 128 printable ASCII characters, none a space at either end (HTTP would strip it).
IDEMPOTENCY_KEY = r"[!-~](?:[ -~]{0,126}[!-~])?"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY)


def model_of(request: Request, settings: Settings) -> str:
    """The `model` query value, or a 422 that lists the valid names."""
    value = request.query_params.get("model")
    if value is None:
        valid = ", ".join(repr(name) for name in settings.models)
        error = {"loc": ["query", "model"], "msg": f"'model' is required: one of {valid}"}
        raise BodyError(422, [{**error, "type": "missing"}])
    return known_model(value, settings)


async def parsed(validator: Validator, body: bytes, max_records: int) -> list[Record]:
    """The body's canonical records (BodyError if refused). A big body is validated off the
    event loop: a valid 10,000-record body costs 50-70 ms of CPU, and /health (a probe with a
    timeout) must not wait behind it."""
    if len(body) > PRESCAN_BYTES:
        return await asyncio.to_thread(validator.parse_body, body, max_records)
    return validator.parse_body(body, max_records)


def idempotency_of(request: Request) -> str | None:
    """The hash of the request's Idempotency-Key (None without one), or a 422 for a bad one."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        error = {"loc": ["header", "Idempotency-Key"], "type": "idempotency_key_invalid",
                 "msg": "Idempotency-Key must be 1 to 128 printable ASCII characters"}  # fmt: skip
        raise BodyError(422, [error])
    return hashlib.sha256(key.encode()).hexdigest()


def refused(error: RefusedError | EntryTooLargeError | IdempotencyKeyReusedError) -> Response:
    """The answer to an append the stream refused (503, 409), or a BodyError for one the
    request itself is at fault for (413, 422)."""
    if isinstance(error, EntryTooLargeError):  # over what Kinesis or SQS takes in one entry
        raise BodyError(413, [{"loc": ["body"], "msg": str(error), "type": "too_large"}])
    if isinstance(error, IdempotencyKeyReusedError):
        loc = ["header", "Idempotency-Key"]
        raise BodyError(422, [{"loc": loc, "msg": str(error), "type": "idempotency_key_reused"}])
    # The group lags MAX_LAG or MAX_LAG_BYTES, replicas are missing, Kinesis or SQS throttle.
    metrics.INGEST_REJECTIONS.labels(error.reason).inc()
    if isinstance(error, IdempotencyInProgressError):
        return json_response({"detail": str(error)}, 409, {"Retry-After": "1"})
    return unavailable(str(error))


# Described in the OpenAPI document by streamfn.ingest.openapi (from the models' schemas).
@router.post("/predict_stream", status_code=202)
async def predict_stream(request: Request) -> Response:
    """Validate the records for the model and append them to the stream as one entry."""
    started = time.perf_counter()
    settings: Settings = request.app.state.settings
    model = model_of(request, settings)
    client, writer = request.app.state.redis.bind()
    try:
        validator = await request.app.state.schemas.validator(model, client)
    except ModelUnavailableError as error:
        metrics.INGEST_REJECTIONS.labels("model_unavailable").inc()
        return unavailable(str(error), error.retry_after_s)
    idempotency = idempotency_of(request)
    body = await read_body(request, settings.MAX_BODY_BYTES)
    records = await parsed(validator, body, settings.MAX_RECORDS)
    try:
        appended = await writer.append(model, records, idempotency)
    except (RefusedError, EntryTooLargeError, IdempotencyKeyReusedError) as error:
        return refused(error)
    if appended.replayed:
        metrics.INGEST_REPLAYED.inc()
    else:
        metrics.INGEST_RECORDS.labels(model).inc(len(records))
    metrics.INGEST_REQUESTS.labels("202").inc()
    metrics.INGEST_LATENCY.observe(time.perf_counter() - started)
    status_url = f"{request.scope.get('root_path', '')}/predictions/{appended.message_id}"
    reply = {"message_id": appended.message_id, "model": model, "records": len(records),
             "status_url": status_url}  # fmt: skip
    replayed = {"Idempotent-Replayed": "true"} if appended.replayed else None
    return json_response(reply, status_code=202, headers=replayed)
