"""The infer function's work: a batch event in, CSV in S3, `batchItemFailures` out.

Per-record isolation: a message that cannot be decoded or predicted fails alone. A shared
dependency that is down (the model registry on a cold start, S3, Redis) fails every message that
needs it, so that the caller retries them and nothing is lost. Rows are written exactly once
through the protocol of `streamfn.infer.sink`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from streamfn import connections, crash, events, message_state, metrics, stream_ids
from streamfn.bucket import PREDICTIONS, Bucket, BucketUnavailableError
from streamfn.config import Settings
from streamfn.infer.messages import Message, MessageError, decode
from streamfn.infer.models import (
    LoadedModel,
    ModelCache,
    ModelRefusedError,
    ModelUnavailableError,
)
from streamfn.infer.rows import Row, encode_csv
from streamfn.infer.sink import OnceWriter
from streamfn.times import now_ms

log = logging.getLogger(__name__)


@dataclass
class InferContext:
    """What a warm infer process keeps between invocations."""

    models: ModelCache
    writer: OnceWriter
    redis: Redis
    result_ttl_s: int
    checkpoint: crash.Checkpoint = crash.no_crash
    probabilities: bool = False  # OUTPUT_PROBABILITIES


def build_context(settings: Settings) -> InferContext:
    """The warm state of an infer process: model cache, S3 writer, Redis client."""
    redis = connections.worker_client(settings.REDIS_URL)
    checkpoint = crash.exit_at(settings.CRASH_AT)
    return InferContext(
        models=ModelCache(
            settings.MLFLOW_TRACKING_URI,
            settings.MODEL_ALIAS,
            settings.MODEL_REFRESH_S,
            settings.models,
        ),
        writer=OnceWriter(Bucket.from_settings(settings), redis, settings.RESULT_TTL_S, checkpoint),
        redis=redis,
        result_ttl_s=settings.RESULT_TTL_S,
        checkpoint=checkpoint,
        probabilities=settings.OUTPUT_PROBABILITIES,
    )


def warm(ctx: InferContext) -> None:
    """Load every model now, before the first batch: a cold load inside a batch slows it.

    An unreachable registry is not fatal here: the models load with the first batch instead.
    """
    for api_name in ctx.models.models:
        try:
            ctx.models.get(api_name)
        except ModelUnavailableError as error:
            log.warning("model not loaded ahead", extra={"model": api_name, "error": str(error)})


class DependencyError(RuntimeError):
    """A shared dependency (model registry, S3, Redis) is down: the whole batch must be retried."""


Errors = dict[str, str]


@dataclass
class Predicted:
    """One model's outputs for a group of messages: per message, its predictions and, when
    asked for, its records' class probabilities."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    probabilities: dict[str, list[list[float]]] = field(default_factory=dict)
    errors: Errors = field(default_factory=dict)


def predict(model: LoadedModel, messages: Sequence[Message], probabilities: bool) -> Predicted:
    """Predictions per message in one call; on a failure, per message to find the culprit."""
    try:
        return _predict_all(model, messages, probabilities)
    except Exception:  # any model error: isolate the culprit below
        return predict_each(model, messages, probabilities)


def _predict_all(model: LoadedModel, messages: Sequence[Message], probabilities: bool) -> Predicted:
    frame = model.frame([r for m in messages for r in m.records])
    flat = model.predict(frame)
    shares = model.probabilities(frame).tolist() if probabilities else []
    out = Predicted()
    start = 0
    for m in messages:
        end = start + len(m.records)
        out.values[m.message_id] = flat[start:end]
        if probabilities:
            out.probabilities[m.message_id] = shares[start:end]
        start = end
    return out


def predict_each(model: LoadedModel, messages: Sequence[Message], probabilities: bool) -> Predicted:
    """One predict call per message, so one bad message fails alone."""
    out = Predicted()
    for m in messages:
        try:
            one = _predict_all(model, [m], probabilities)
        except Exception as error:  # the model's error becomes the message's
            out.errors[m.message_id] = f"prediction failed: {type(error).__name__}: {error}"
            continue
        out.values.update(one.values)
        out.probabilities.update(one.probabilities)
    return out


def rows_of(
    model: LoadedModel, messages: Sequence[Message], predicted: Predicted, at_ms: int
) -> list[Row]:
    """One CSV row per record of the messages."""
    rows = []
    for m in messages:
        values = predicted.values[m.message_id]
        shares = predicted.probabilities.get(m.message_id) or [()] * len(values)
        for index, (record, value, proba) in enumerate(zip(m.records, values, shares, strict=True)):
            rows.append(Row(m.message_id, index, model.api_name, model.registered_name,
                            model.version, value, m.received_at, at_ms, record, proba))  # fmt: skip
    return rows


def write_model_group(ctx: InferContext, api_name: str, messages: list[Message]) -> Errors:
    """Predict, write one CSV object and record results for one model's messages; return errors."""
    model = ctx.models.get(api_name)
    probabilities = ctx.probabilities and model.has_probabilities
    predicted = predict(model, messages, probabilities)
    errors = predicted.errors
    ok = [m for m in messages if m.message_id in predicted.values]
    objects = ctx.writer.already_written([m.message_id for m in ok])
    fresh = [m for m in ok if m.message_id not in objects]
    written_at: int | None = None  # when this call's object landed (not a redelivery's)
    if fresh:
        at_ms = now_ms()
        labels = [model.schema.label(c) for c in model.classes] if probabilities else []
        body = encode_csv(model.schema, rows_of(model, fresh, predicted, at_ms), labels)
        ids = [m.message_id for m in fresh]
        written = ctx.writer.write(PREDICTIONS, api_name, ids, body, at_ms)
        written_at = written.written_at
        objects.update(dict.fromkeys(ids, written.uri))
        metrics.INFER_RECORDS.labels(api_name).inc(sum(len(m.records) for m in fresh))
        for m in fresh:
            metrics.END_TO_END_SECONDS.observe((written_at - m.received_at) / 1000)
    fresh_ids = {m.message_id for m in fresh}
    done = [
        (m.message_id, message_state.done(
            api_name, model.version, predicted.values[m.message_id], objects[m.message_id],
            written_at if m.message_id in fresh_ids else None,
        ))
        for m in ok
    ]  # fmt: skip
    failed = [(i, message_state.failed(api_name, error)) for i, error in errors.items()]
    message_state.save(ctx.redis, done + failed, ctx.result_ttl_s)
    ctx.checkpoint("after_done")
    return errors


def handle(event: dict[str, Any], ctx: InferContext) -> events.BatchResponse:
    """Process a batch event; raise DependencyError if a shared dependency is down."""
    failures: Errors = {}
    groups: dict[str, list[Message]] = defaultdict(list)
    for record in events.records_of(event):
        try:
            message = decode(record, ctx.models.models)
        except MessageError as error:
            failures[record.item_id] = str(error)
            continue
        groups[message.model].append(message)
    outages: list[str] = []
    for api_name, messages in groups.items():
        try:
            failures.update(write_model_group(ctx, api_name, messages))
        except ModelRefusedError as refused:  # retrying will not help: each fails alone
            failures.update(dict.fromkeys((m.message_id for m in messages), str(refused)))
        except (ModelUnavailableError, BucketUnavailableError, RedisError) as error:
            outages.append(f"{api_name}: {error}")
    record_poison(ctx, failures)
    if outages:
        metrics.INFER_OUTAGES.inc()
        raise DependencyError("; ".join(outages))
    return events.response(failures)


def record_poison(ctx: InferContext, failures: Errors) -> None:
    """Log each failed message and keep its error where GET /predictions and the DLQ find it."""
    for message_id, error in failures.items():
        log.warning("message failed", extra={"message_id": message_id, "error": error})
    metrics.INFER_FAILURES.inc(len(failures))
    states = [
        (i, message_state.failed(None, e))
        for i, e in failures.items()
        if stream_ids.is_stream_id(i)
    ]
    if states:
        message_state.save(ctx.redis, states, ctx.result_ttl_s)
