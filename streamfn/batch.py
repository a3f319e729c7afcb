"""The infer function's work: an SQS-shaped batch event in, CSV in S3, `batchItemFailures` out.

Per-record isolation: a message that cannot be decoded or predicted fails alone. A shared
dependency that is down (the model registry on a cold start, S3) fails every message that needs
it, so that the poller leaves them pending and nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson
from redis import Redis
from redis.exceptions import RedisError

from streamfn import metrics, results
from streamfn.config import Settings
from streamfn.constants import API_NAMES, result_key
from streamfn.models import LoadedModel, ModelCache, ModelUnavailableError, frame_of
from streamfn.sink import Row, S3Sink, SinkUnavailableError, encode_csv, object_key
from streamfn.stream import is_stream_id

log = logging.getLogger(__name__)


class ItemFailure(TypedDict):
    """One failed message, by the Lambda partial-batch convention."""

    itemIdentifier: str


class BatchResponse(TypedDict):
    """What the infer function answers: the messages to leave pending."""

    batchItemFailures: list[ItemFailure]


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded stream entry: its id, model, canonical records and receive time."""

    message_id: str
    model: str
    records: list[dict[str, Any]]
    received_at: int


@dataclass
class InferContext:
    """What a warm infer process keeps between invocations."""

    models: ModelCache
    sink: S3Sink
    redis: Redis
    result_ttl_s: int


def build_context(settings: Settings) -> InferContext:
    """The warm state of an infer process: model cache, S3 sink, Redis client."""
    return InferContext(
        models=ModelCache(
            settings.MLFLOW_TRACKING_URI, settings.MODEL_ALIAS, settings.MODEL_REFRESH_S
        ),
        sink=S3Sink.from_settings(settings),
        redis=Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2),
        result_ttl_s=settings.RESULT_TTL_S,
    )


def warm(ctx: InferContext) -> None:
    """Load every model now, before the first batch: a cold load inside a batch slows it.

    An unreachable registry is not fatal here: the models load with the first batch instead.
    """
    for api_name in API_NAMES:
        try:
            ctx.models.get(api_name)
        except ModelUnavailableError as error:
            log.warning("model not loaded ahead", extra={"model": api_name, "error": str(error)})


class MessageError(ValueError):
    """A message that can never be processed as it is (a poison message)."""


def decode(record: dict[str, Any]) -> Message:
    """The message in one event record, or MessageError saying what is wrong with it."""
    message_id = str(record.get("messageId", ""))
    try:
        entry = orjson.loads(record["body"])
    except (KeyError, TypeError, orjson.JSONDecodeError) as error:
        raise MessageError(f"body is not JSON: {error}") from None
    if not isinstance(entry, dict):
        raise MessageError("body is not a JSON object")
    model, data, received_at = entry.get("model"), entry.get("data"), entry.get("received_at")
    if model not in API_NAMES:
        raise MessageError(f"unknown model {model!r}; expected one of {', '.join(API_NAMES)}")
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
        raise MessageError("data is not a non-empty list of records")
    if not isinstance(received_at, int):
        raise MessageError("received_at is not epoch milliseconds")
    return Message(message_id, model, data, received_at)


class DependencyError(RuntimeError):
    """A shared dependency (model registry, S3) is down: the whole batch must be retried."""


def already_written(ctx: InferContext, messages: Sequence[Message]) -> dict[str, str]:
    """Object URIs of messages whose rows are already in the bucket: never write them twice.

    Before each write, the object's URI is recorded against its messages (status pending). A
    message redelivered after a crash finds that record; if the object exists (S3 writes are
    atomic), its rows are there already, whatever batch the message is in now.
    """
    stored = ctx.redis.mget([result_key(m.message_id) for m in messages])
    written: dict[str, str] = {}
    prefix = ctx.sink.url("")
    for message, raw in zip(messages, stored, strict=True):
        state = orjson.loads(raw) if raw is not None else {}
        uri = state.get("object")
        if uri and (state.get("status") == "done" or ctx.sink.exists(uri.removeprefix(prefix))):
            written[message.message_id] = uri
    return written


def predict(
    model: LoadedModel, messages: Sequence[Message]
) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Predictions per message in one call; on a failure, per message to find the culprit."""
    records = [r for m in messages for r in m.records]
    try:
        flat = model.predict(frame_of(records)).tolist()
    except Exception:  # any model error: isolate the culprit below
        return predict_each(model, messages)
    out: dict[str, list[int]] = {}
    start = 0
    for m in messages:
        out[m.message_id] = [int(p) for p in flat[start : start + len(m.records)]]
        start += len(m.records)
    return out, {}


def predict_each(
    model: LoadedModel, messages: Sequence[Message]
) -> tuple[dict[str, list[int]], dict[str, str]]:
    """One predict call per message, so one bad message fails alone."""
    out: dict[str, list[int]] = {}
    errors: dict[str, str] = {}
    for m in messages:
        try:
            out[m.message_id] = [int(p) for p in model.predict(frame_of(m.records)).tolist()]
        except Exception as error:  # the model's error becomes the message's
            errors[m.message_id] = f"prediction failed: {type(error).__name__}: {error}"
    return out, errors


def rows_of(
    model: LoadedModel, messages: Iterable[Message], predictions: dict[str, list[int]], now_ms: int
) -> list[Row]:
    """One CSV row per record of the messages."""
    return [
        Row(
            m.message_id,
            index,
            model.api_name,
            model.registered_name,
            model.version,
            prediction,
            m.received_at,
            now_ms,
            record,
        )
        for m in messages
        for index, (record, prediction) in enumerate(
            zip(m.records, predictions[m.message_id], strict=True)
        )
    ]


def write_model_group(ctx: InferContext, api_name: str, messages: list[Message]) -> dict[str, str]:
    """Predict, write one CSV object and record results for one model's messages; return errors."""
    model = ctx.models.get(api_name)
    predictions, errors = predict(model, messages)
    ok = [m for m in messages if m.message_id in predictions]
    objects = already_written(ctx, ok)
    fresh = [m for m in ok if m.message_id not in objects]
    written_at: int | None = None  # when this call's object landed (not a redelivery's)
    if fresh:
        now_ms = time.time_ns() // 1_000_000
        day = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
        key = object_key(api_name, day, [m.message_id for m in fresh])
        uri = ctx.sink.url(key)
        intent: results.Result = {"status": "pending", "model": api_name, "object": uri}
        results.save(ctx.redis, [(m.message_id, intent) for m in fresh], ctx.result_ttl_s)
        ctx.sink.put(key, encode_csv(rows_of(model, fresh, predictions, now_ms)))
        written_at = time.time_ns() // 1_000_000
        objects.update(dict.fromkeys((m.message_id for m in fresh), uri))
        metrics.INFER_RECORDS.labels(api_name).inc(sum(len(m.records) for m in fresh))
        for m in fresh:
            metrics.END_TO_END_SECONDS.observe((written_at - m.received_at) / 1000)
    fresh_ids = {m.message_id for m in fresh}
    done = [
        (
            m.message_id,
            results.done(
                api_name,
                model.version,
                predictions[m.message_id],
                objects[m.message_id],
                written_at if m.message_id in fresh_ids else None,
            ),
        )
        for m in ok
    ]
    failed = [(i, results.failed(api_name, error)) for i, error in errors.items()]
    results.save(ctx.redis, done + failed, ctx.result_ttl_s)
    return errors


def handle(event: dict[str, Any], ctx: InferContext) -> BatchResponse:
    """Process an SQS-shaped batch event; raise DependencyError if a shared dependency is down."""
    failures: dict[str, str] = {}
    groups: dict[str, list[Message]] = defaultdict(list)
    for record in event.get("Records", []):
        try:
            message = decode(record)
        except MessageError as error:
            failures[str(record.get("messageId", ""))] = str(error)
            continue
        groups[message.model].append(message)
    outages: list[str] = []
    for api_name, messages in groups.items():
        try:
            failures.update(write_model_group(ctx, api_name, messages))
        except (ModelUnavailableError, SinkUnavailableError, RedisError) as error:
            outages.append(f"{api_name}: {error}")
    record_poison(ctx, failures)
    if outages:
        metrics.INFER_OUTAGES.inc()
        raise DependencyError("; ".join(outages))
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}


def record_poison(ctx: InferContext, failures: dict[str, str]) -> None:
    """Log each failed message and keep its error where GET /predictions and the DLQ find it."""
    for message_id, error in failures.items():
        log.warning("message failed", extra={"message_id": message_id, "error": error})
    metrics.INFER_FAILURES.inc(len(failures))
    stream_ids = [(i, results.failed(None, e)) for i, e in failures.items() if is_stream_id(i)]
    if stream_ids:
        results.save(ctx.redis, stream_ids, ctx.result_ttl_s)
