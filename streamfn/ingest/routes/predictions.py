"""GET /predictions/{message_id}: the state and result of one accepted message."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from streamfn.api.deps import RedisDep, SettingsDep
from streamfn.api.responses import json_response
from streamfn.core import message_state, plugins, stream_ids
from streamfn.core.connections import AsyncClient
from streamfn.core.message_ids import NATIVE_ID
from streamfn.core.settings import Settings
from streamfn.ingest.openapi import MESSAGE, NOT_FOUND, REDIS_DOWN
from streamfn.ingest.schema_cache import ModelUnavailableError, SchemasDep

router = APIRouter()


async def find(client: AsyncClient, settings: Settings, message_id: str) -> dict[str, Any] | None:
    """The stored state of a message, {"status": "pending"} while in the stream, else None."""
    on_redis = plugins.BACKENDS[settings.STREAM_BACKEND].in_redis
    if not (stream_ids.is_stream_id(message_id) if on_redis else NATIVE_ID.fullmatch(message_id)):
        return None
    stored = await client.get(settings.keys.result(message_id))
    if stored is not None:
        return dict(message_state.decode(stored))
    if not on_redis:  # ingest marks a Kinesis or SQS message pending when it accepts it
        return None
    [model] = await message_state.queued(client, settings.streams, [message_id])
    return None if model is None else {"status": "pending", "model": model}


@router.get(
    "/predictions/{message_id}",
    summary="The state and result of one message",
    responses={
        200: {"content": {"application/json": {"schema": MESSAGE}}},
        **NOT_FOUND,
        **REDIS_DOWN,
    },
)
async def get_prediction(
    message_id: Annotated[str, Path(examples=["1732600000000-0"])],
    redis: RedisDep,
    settings: SettingsDep,
    schemas: SchemasDep,
) -> Response:
    """pending, done (with predictions and labels, and each record's reason codes when it was
    explained), failed or dead_letter; 404 if unknown."""
    client, _ = redis.bind()
    state = await find(client, settings, message_id)
    if state is None:
        raise HTTPException(404, f"no message {message_id!r} was accepted (or its result expired)")
    predictions = state.get("predictions")
    labels = None
    if predictions and state.get("model") in settings.models:
        try:
            schema = (await schemas.validator(state["model"], client)).schema
            if schema.output == "class":
                labels = [schema.label(p) for p in predictions]
        except ModelUnavailableError:
            pass  # the predictions stand without their labels
    return json_response(
        {
            "message_id": message_id,
            "status": state["status"],
            "model": state.get("model"),
            "model_version": state.get("model_version"),
            "predictions": predictions,
            "labels": labels,
            "object": state.get("object"),
            "error": state.get("error"),
            **({"reasons": state["reasons"]} if "reasons" in state else {}),
        }
    )
