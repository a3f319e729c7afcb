"""The infer function's work: a batch event in, CSV in S3, `batchItemFailures` out.

Per-record isolation: a message that cannot be decoded or predicted fails alone. A shared
dependency that is down (the model registry on a cold start, S3, Redis) fails every message that
needs it, so that the caller retries them and nothing is lost. Rows are written exactly once
through the protocol of `streamfn.sink.once`, in SINK_FORMAT.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from streamfn.core import connections, crash, message_state, metrics
from streamfn.core.clock import now_ms
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.infer.canary import CanaryRouter, Route
from streamfn.infer.explaining import Explained, explain
from streamfn.infer.messages import Message, MessageError, decode
from streamfn.infer.predicting import Errors, Predicted, predict, rows_of
from streamfn.infer.shadow import Shadow, ShadowScorer
from streamfn.infer.windows import count_windows, failed_canary
from streamfn.models.cache import ModelCache
from streamfn.models.challengers import ChallengerCache
from streamfn.models.loaded import LoadedModel, ModelRefusedError, ModelUnavailableError
from streamfn.models.registry import RegistryError
from streamfn.monitor.closer import WindowCloser
from streamfn.monitor.recorder import DoneRecorder
from streamfn.sink.bucket import Bucket, BucketUnavailableError
from streamfn.sink.counts import Tally
from streamfn.sink.formats.base import format_named
from streamfn.sink.layout import PREDICTIONS
from streamfn.sink.once import Found, OnceWriter
from streamfn.sink.rows import object_metadata
from streamfn.stream import events

log = logging.getLogger(__name__)

RETENTION_S = 86_400
MAX_DONE_ATTEMPTS = 3


@dataclass
class InferContext:
    """What a warm infer process keeps between invocations."""

    models: ModelCache
    writer: OnceWriter
    redis: SyncClient
    keys: Keys
    result_ttl_s: int
    recorder: DoneRecorder
    closer: WindowCloser | None = None  # None: no monitoring
    checkpoint: crash.Checkpoint = crash.no_crash
    probabilities: bool = False  # OUTPUT_PROBABILITIES
    window_s: float = 0.0  # MONITOR_WINDOW_S
    shadow: ShadowScorer | None = None  # scores with each model's challenger
    explanations: int = 0  # OUTPUT_EXPLANATIONS: reason codes a row
    explain_share: float = 1.0  # EXPLAIN_SHARE
    estimate: bool = False  # windows counted and ESTIMATE_PERFORMANCE: calibrated probabilities
    canary: CanaryRouter | None = None  # which messages each model's challenger serves


def build_context(settings: Settings) -> InferContext:
    """The warm state of an infer process: model cache, S3 writer, Redis client."""
    redis = connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER)
    keys = settings.keys
    checkpoint = crash.exit_at(settings.CRASH_AT)
    bucket = Bucket.from_settings(settings)
    sink_format = format_named(settings.SINK_FORMAT)
    models = ModelCache(
        settings.MLFLOW_TRACKING_URI, settings.MODEL_ALIAS, settings.MODEL_REFRESH_S,
        settings.models, settings.model_flavours, runtime=settings.PREDICT_RUNTIME,
    )  # fmt: skip
    window_s = settings.MONITOR_WINDOW_S
    estimate = bool(window_s) and settings.ESTIMATE_PERFORMANCE
    closer = None
    if window_s:
        closer = WindowCloser(redis, keys, bucket, models.profile, window_s,
                              settings.MONITOR_MIN_RECORDS, settings.DRIFT_PSI,
                              settings.ATTRIBUTION_NDCG)  # fmt: skip
    challengers = ChallengerCache(
        settings.MLFLOW_TRACKING_URI, settings.CHALLENGER_ALIAS, settings.MODEL_REFRESH_S,
        settings.models, settings.model_flavours, runtime=settings.PREDICT_RUNTIME,
    )  # fmt: skip
    models.reuse = challengers.loaded
    ttl_s = settings.RESULT_TTL_S
    shadow_writer = OnceWriter(bucket, redis, ttl_s, keys.shadow, sink_format)
    # On a cluster with partitions, a message's state and the counts are in two slots.
    split = settings.REDIS_CLUSTER and settings.STREAM_PARTITIONS > 1
    recorder = DoneRecorder(redis, keys, ttl_s, retention_s(settings), split)
    return InferContext(
        models=models,
        writer=OnceWriter(bucket, redis, ttl_s, keys.result, sink_format, checkpoint),
        redis=redis,
        keys=keys,
        result_ttl_s=ttl_s,
        recorder=recorder,
        closer=closer,
        checkpoint=checkpoint,
        probabilities=settings.OUTPUT_PROBABILITIES,
        window_s=window_s,
        shadow=ShadowScorer(
            challengers, shadow_writer, settings.SHADOW_SHARE, ttl_s, estimate=estimate
        ),
        explanations=settings.OUTPUT_EXPLANATIONS,
        explain_share=settings.EXPLAIN_SHARE,
        estimate=estimate,
        canary=CanaryRouter(redis, keys, settings.CANARY_SHARE, challengers),
    )


def retention_s(settings: Settings) -> int:
    """How long a window's counts stay in Redis: a day, or three windows if that is longer."""
    return int(max(RETENTION_S, 3 * settings.MONITOR_WINDOW_S))


def warm(ctx: InferContext) -> None:
    """Load every model now, before the first batch: a cold load inside a batch slows it.

    An unreachable registry is not fatal here: the models load with the first batch instead.
    The challengers load on their own thread meanwhile, and are waited for too, so that a new
    process (a replaced poller) scores its first batches in shadow as well.
    """
    for api_name in ctx.models.models:
        if ctx.shadow is not None:
            ctx.shadow.challengers.get(api_name)
        try:
            ctx.models.get(api_name)
        except ModelUnavailableError as error:
            log.warning("model not loaded ahead", extra={"model": api_name, "error": str(error)})
    if ctx.shadow is not None:
        ctx.shadow.challengers.settle()


class DependencyError(RuntimeError):
    """A shared dependency (model registry, S3, Redis) is down: the whole batch must be retried."""


def write_model_group(ctx: InferContext, api_name: str, messages: list[Message]) -> Errors:
    """Predict, write one object per serving version and record results for one model's
    messages (the canary's served by the challenger, the rest by the champion); return errors."""
    champion = ctx.models.get(api_name)
    found = ctx.writer.already_written([m.message_id for m in messages])
    if ctx.canary is not None:
        route = ctx.canary.route(champion, messages, found)
    else:
        route = Route(champion, list(messages))
    if route.challenger is not None and route.canary:
        predicted = predict_group(ctx, route.challenger, route.canary)
        failed = [m for m in route.canary if m.message_id in predicted.errors]
        if failed:  # the challenger's failure is not the message's: the champion serves it
            log.warning("canary messages served by the champion: the challenger failed on them",
                        extra={"model": api_name, "version": route.challenger.version,
                               "message_ids": [m.message_id for m in failed],
                               "error": next(iter(predicted.errors.values()))})  # fmt: skip
            route.fail_over(failed, route.challenger.version)
        serving = Serving(route.challenger, route.canary, champion, 1.0, canary=True)
        write_served(ctx, serving, predicted, found)
    shadow = ctx.shadow.challengers.get(api_name) if ctx.shadow else None
    serving = Serving(champion, route.rest, shadow, ctx.shadow.share if ctx.shadow else 0.0,
                      failed=route.failed)  # fmt: skip
    errors = write_served(ctx, serving, predict_group(ctx, champion, route.rest), found)
    ctx.checkpoint("after_done")
    return errors


@dataclass(frozen=True)
class Serving:
    """One version's share of a model's messages, and the version that scores them in shadow."""

    served: LoadedModel
    messages: list[Message]
    other: LoadedModel | None = None  # scores a `share` of them in shadow
    share: float = 1.0
    canary: bool = False  # the challenger serving the canary share
    # Canary messages the challenger could not serve (these are served instead): id -> version.
    failed: dict[str, str] = field(default_factory=dict)


def predict_group(ctx: InferContext, model: LoadedModel, messages: list[Message]) -> Predicted:
    """One version's predictions of these messages (none asked when there are none)."""
    if not messages:
        return Predicted()
    probabilities = ctx.probabilities and model.has_probabilities
    return predict(model, messages, probabilities, estimate=ctx.estimate)


def write_served(
    ctx: InferContext, serving: Serving, predicted: Predicted, found: dict[str, Found]
) -> Errors:
    """Write the served rows once, the shadow rows, and record the messages done; errors."""
    model, api_name = serving.served, serving.served.api_name
    probabilities = ctx.probabilities and model.has_probabilities
    ok = [m for m in serving.messages if m.message_id in predicted.values]
    explained = explain(model, ok, predicted, ctx.explanations, ctx.explain_share)
    objects = {m.message_id: found[m.message_id].uri for m in ok if m.message_id in found}
    fresh = [m for m in ok if m.message_id not in found]
    written_at: int | None = None  # when this call's object landed (not a redelivery's)
    if fresh:
        at_ms = now_ms()
        labels = [model.schema.label(c) for c in model.classes] if probabilities else []
        ids = [m.message_id for m in fresh]
        reasons = ctx.explanations if explained is not None else 0
        rows = rows_of(model, fresh, predicted, at_ms, explained, reasons)
        body = ctx.writer.encode(PREDICTIONS, model.schema, rows, labels, reasons)
        written = ctx.writer.write(PREDICTIONS, api_name, ids, body, at_ms,
                                   object_metadata(model.runtime_name), model.version)  # fmt: skip
        written_at = written.written_at
        objects.update(dict.fromkeys(ids, written.uri))
        records = sum(len(m.records) for m in fresh)
        metrics.INFER_RECORDS.labels(api_name).inc(records)
        if serving.canary:
            metrics.CANARY_RECORDS.labels(api_name).inc(records)
        for m in fresh:
            metrics.END_TO_END_SECONDS.observe((written_at - m.received_at) / 1000)
    # Done only once: a message recorded done before (a redelivery) is left as it is.
    fresh_ids = {m.message_id for m in fresh}
    finishing = [m for m in ok if not (m.message_id in found and found[m.message_id].done)]
    # Shadow rows before the done record: a message recorded done has both kinds of rows.
    shadow = None
    if ctx.shadow is not None:
        shadow = ctx.shadow.score(model, serving.other, finishing, predicted, serving.share)
    states = {
        m.message_id: message_state.done(
            api_name, model.version, predicted.values[m.message_id], objects[m.message_id],
            written_at if m.message_id in fresh_ids else None, m.received_at,
            explained.reasons(m.message_id, ctx.explanations) if explained else None,
        )
        for m in finishing
    }  # fmt: skip
    record_done(ctx, serving, finishing, predicted, states, shadow, explained)
    failed = [(i, message_state.failed(api_name, error)) for i, error in predicted.errors.items()]
    if failed and not serving.canary:  # the canary's failures were served by the champion
        message_state.save(ctx.redis, failed, ctx.result_ttl_s, ctx.keys.result)
    return {} if serving.canary else predicted.errors


def record_done(
    ctx: InferContext, serving: Serving, messages: list[Message], predicted: Predicted,
    states: dict[str, message_state.MessageState], shadow: Shadow | None = None,
    explained: Explained | None = None,
) -> None:  # fmt: skip
    """Record the messages done with their window counts and the console's counts, in one step;
    a message another poller recorded done meanwhile is left out, and the others counted again
    without it."""
    key_of = ctx.writer.bucket.key_of
    model = serving.served
    for _ in range(MAX_DONE_ATTEMPTS):
        windows = count_windows(model, messages, predicted, ctx.window_s, shadow, explained,
                                serving.canary)  # fmt: skip
        windows += failed_canary(model.api_name, messages, serving.failed, ctx.window_s)
        finished = [(m.message_id, len(m.records), key_of(str(states[m.message_id]["object"])))
                    for m in messages]  # fmt: skip
        tally = Tally.of(model.api_name, model.version, now_ms(), finished)
        already = ctx.recorder.record([(m.message_id, states[m.message_id]) for m in messages],
                                      windows, tally)  # fmt: skip
        if not already:
            metrics.CANARY_FAILURES.labels(model.api_name).inc(
                sum(len(m.records) for m in messages if m.message_id in serving.failed)
            )
            return
        messages = [m for m in messages if m.message_id not in already]
    raise DependencyError("messages kept being recorded done by another poller")


def handle(event: dict[str, Any], ctx: InferContext) -> events.BatchResponse:
    """Process a batch event; raise DependencyError if a shared dependency is down."""
    failures: Errors = {}  # by message id
    groups: dict[str, list[Message]] = defaultdict(list)
    records = events.records_of(event)
    for record in records:
        try:
            message = decode(record, ctx.models.models)
        except MessageError as error:
            failures[record.message_id] = str(error)
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
    try:
        record_poison(ctx, failures)
    except RedisError as error:  # an outage, not the batch's fault: retried whole
        outages.append(f"failures not recorded: {error}")
    close_windows(ctx)
    if outages:
        metrics.INFER_OUTAGES.inc()
        raise DependencyError("; ".join(outages))
    # A failure names its record as the source knows it (a Kinesis sequence number).
    item_of = {r.message_id: r.item_id for r in records}
    return events.response(item_of[i] for i in failures)


def close_windows(ctx: InferContext) -> None:
    """Write the windows that are due; an outage here only delays them (the next batch retries)."""
    if ctx.closer is None:
        return
    try:
        ctx.closer.maybe_close()
    except (RedisError, BucketUnavailableError, RegistryError) as error:
        log.warning("windows not closed; retried with a later batch", extra={"error": str(error)})


def record_poison(ctx: InferContext, failures: Errors) -> None:
    """Log each failed message and keep its error where GET /predictions and the DLQ find it."""
    for message_id, error in failures.items():
        log.warning("message failed", extra={"message_id": message_id, "error": error})
    metrics.INFER_FAILURES.inc(len(failures))
    states = [(i, message_state.failed(None, e)) for i, e in failures.items() if i]
    if states:
        message_state.save(ctx.redis, states, ctx.result_ttl_s, ctx.keys.result)
