"""GET /monitoring and POST /feedback: drift and live accuracy per window, and ground truth."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from streamfn.api.deps import RedisDep, SettingsDep
from streamfn.api.inputs import ModelQuery, known_model, read_body
from streamfn.api.responses import BodyError, json_response
from streamfn.core import metrics
from streamfn.core.settings import Settings
from streamfn.ingest.openapi import FEEDBACK_BODY, FEEDBACK_DOC, MONITORING_DOC, REDIS_DOWN
from streamfn.ingest.schema_cache import ModelUnavailableError, SchemaCache, SchemasDep
from streamfn.models.schemas import ModelSchema
from streamfn.monitor import WINDOWS_SHOWN, feedback, windows

log = logging.getLogger(__name__)
router = APIRouter()
WindowsQuery = Annotated[int, Query(alias="windows", ge=1, le=1440)]


@router.get("/monitoring", summary="Drift and live accuracy per window, newest first",
            responses={**MONITORING_DOC, **REDIS_DOWN})  # fmt: skip
async def monitoring(
    redis: RedisDep,
    settings: SettingsDep,
    schemas: SchemasDep,
    model: ModelQuery = None,
    count: WindowsQuery = WINDOWS_SHOWN,
) -> Response:
    """Each window's records, PSI and flag per input and for the predictions, accuracy, macro F1."""
    names = [known_model(model, settings)] if model is not None else list(settings.models)
    client, _ = redis.bind()
    found = []
    for name in names:
        found += await windows.reports(client, name, count, settings, schemas.profile)
    found.sort(key=lambda w: w["window_start"], reverse=True)
    return json_response({"window_s": settings.MONITOR_WINDOW_S, "windows": found})


@router.post("/feedback", status_code=202, summary="Ground truth for stored predictions",
             openapi_extra={"requestBody": FEEDBACK_BODY}, responses=FEEDBACK_DOC)  # fmt: skip
async def post_feedback(request: Request, schemas: SchemasDep) -> Response:
    """Join each label to its prediction and count it once; 422 naming those that cannot be."""
    settings = request.app.state.settings
    raw = await read_body(request, settings.MAX_BODY_BYTES)
    try:
        labels = feedback.check(orjson.loads(raw))
    except orjson.JSONDecodeError as error:
        raise BodyError(422, [{"loc": ["body"], "msg": f"Malformed JSON: {error}",
                               "type": "json_invalid"}]) from None  # fmt: skip
    except feedback.FeedbackError as error:
        raise BodyError(422, error.errors) from None
    client, _ = request.app.state.redis.bind()
    try:
        joined = await feedback.join(
            client, labels, await served(client, schemas, settings), settings
        )
    except feedback.FeedbackError as error:
        raise BodyError(422, error.errors) from None
    done = await feedback.count_once(client, settings.keys, joined, settings.RESULT_TTL_S)
    tell(done)
    return json_response({"joined": len(joined), "counted": done.counted,
                          "repeated": done.repeated, "conflicts": len(done.conflicts),
                          "at": int(time.time())}, status_code=202)  # fmt: skip


def tell(done: feedback.Counted) -> None:
    """Count what became of the labels; a conflict is also a log line naming its records."""
    metrics.FEEDBACK_LABELS.labels("counted").inc(done.counted)
    metrics.FEEDBACK_LABELS.labels("repeated").inc(done.repeated)
    if done.conflicts:
        metrics.FEEDBACK_LABELS.labels("conflict").inc(len(done.conflicts))
        named = [f"{c.message_id}/{c.record_index}" for c in done.conflicts[:10]]
        log.warning("conflicting labels: each record keeps its first",
                    extra={"conflicts": len(done.conflicts), "records": named})  # fmt: skip


async def served(client: Any, schemas: SchemaCache, settings: Settings) -> dict[str, ModelSchema]:
    """The schema each model is served with now (a model the registry cannot give is left out:
    its labels are refused as not a class of it)."""
    known = {}
    for model in settings.models:
        try:
            known[model] = (await schemas.validator(model, client)).schema
        except ModelUnavailableError:
            continue
    return known
