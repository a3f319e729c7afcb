"""GET /models: every configured model, the version it serves, its challenger (scored in
shadow) and the records it takes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from streamfn.api.deps import RedisDep, SettingsDep
from streamfn.api.responses import json_response
from streamfn.ingest.openapi import REDIS_DOWN
from streamfn.ingest.schema_cache import ModelUnavailableError, SchemaCache, SchemasDep
from streamfn.models.registry import RegistryError

router = APIRouter()


async def challenger_of(schemas: SchemaCache, registered: str, alias: str) -> str | None:
    """The version CHALLENGER_ALIAS names, None when none does (or the registry is down)."""
    try:
        return await asyncio.to_thread(schemas.registry.alias_target, registered, alias)
    except RegistryError:
        return None


async def describe(
    model: str, registered: str, schemas: SchemaCache, redis: Any, challenger_alias: str
) -> dict:
    """One model: its registered name, the version served and its columns, or why not."""
    entry: dict[str, Any] = {"model": model, "registered_name": registered, "version": None,
                             "challenger": await challenger_of(schemas, registered,
                                                               challenger_alias)}  # fmt: skip
    try:
        schema = (await schemas.validator(model, redis)).schema
    except ModelUnavailableError as error:
        return {**entry, "error": str(error)}
    document = schema.to_json()
    return {**entry, "version": schema.version, "output": document["output"],
            "labels": document["labels"], "columns": document["columns"]}  # fmt: skip


@router.get(
    "/models",
    summary="The configured models, their versions and input schemas",
    responses=REDIS_DOWN,
)
async def models(settings: SettingsDep, schemas: SchemasDep, redis: RedisDep) -> Response:
    """Every model of MODELS, in order, looked up concurrently."""
    client, _ = redis.bind()
    found = await asyncio.gather(
        *(
            describe(m, r, schemas, client, settings.CHALLENGER_ALIAS)
            for m, r in settings.models.items()
        )
    )
    return json_response({"alias": settings.MODEL_ALIAS, "models": found})
