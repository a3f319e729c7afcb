"""GET /models: every configured model, the version it serves, its challenger (scored in
shadow), its canary (the share the challenger serves, the step, the last decision), the runtime
that serves each and why, and the records it takes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from streamfn.api.deps import RedisDep, SettingsDep
from streamfn.api.responses import json_response
from streamfn.core.canaries import Canary, share_of
from streamfn.core.settings import Settings
from streamfn.ingest.openapi import REDIS_DOWN
from streamfn.ingest.schema_cache import ModelUnavailableError, SchemaCache, SchemasDep
from streamfn.models import schemas as model_files
from streamfn.models.registry import Registry, RegistryError
from streamfn.models.runtimes.choice import PARITY_FILE, choose, is_onnx_model

router = APIRouter()


async def challenger_of(schemas: SchemaCache, registered: str, alias: str) -> str | None:
    """The version CHALLENGER_ALIAS names, None when none does (or the registry is down)."""
    try:
        return await asyncio.to_thread(schemas.registry.alias_target, registered, alias)
    except RegistryError:
        return None


def runtime_choice(registry: Registry, registered: str, version: str, setting: str) -> dict:
    """The runtime that serves a version and why, as the infer function decides it: from
    PREDICT_RUNTIME, the version's parity report and whether it is an ONNX model."""
    mlmodel = registry.file(registered, version, model_files.MLMODEL_FILE)
    report = registry.json_file(registered, version, PARITY_FILE)
    choice = choose(setting, report, is_onnx_model(mlmodel.decode() if mlmodel else None))
    return choice.to_json()


async def runtime_of(
    schemas: SchemaCache, registered: str, version: str | None, setting: str
) -> dict | None:
    """runtime_choice, off the event loop; None without a version or a readable registry."""
    if version is None:
        return None
    try:
        return await asyncio.to_thread(runtime_choice, schemas.registry, registered, version,
                                       setting)  # fmt: skip
    except RegistryError as error:
        return {"name": None, "reason": f"the registry cannot be read: {error}"}


async def canary_of(
    redis: Any, settings: Settings, model: str, challenger: str | None
) -> dict[str, Any] | None:
    """The model's canary as Redis keeps it, with `serving`: the share its challenger serves
    now (CANARY_SHARE unless `streamfn canary` set one for that version); None without any."""
    found = Canary.from_hash(await redis.hgetall(settings.keys.canary(model)))
    serving = share_of(found, challenger, settings.CANARY_SHARE)
    if found is None:
        if not serving:
            return None
        return {"version": challenger, "serving": serving, "status": "CANARY_SHARE"}
    return {**found.to_json(), "serving": serving}


async def describe(
    model: str, registered: str, schemas: SchemaCache, redis: Any, settings: Settings
) -> dict:
    """One model: its registered name, the version served, its runtime and its columns, or why
    not; its challenger, the challenger's runtime and its canary."""
    challenger = await challenger_of(schemas, registered, settings.CHALLENGER_ALIAS)
    entry: dict[str, Any] = {
        "model": model, "registered_name": registered, "version": None, "runtime": None,
        "challenger": challenger,
        "challenger_runtime": await runtime_of(schemas, registered, challenger,
                                               settings.PREDICT_RUNTIME),
        "canary": await canary_of(redis, settings, model, challenger),
    }  # fmt: skip
    try:
        schema = (await schemas.validator(model, redis)).schema
    except ModelUnavailableError as error:
        return {**entry, "error": str(error)}
    document = schema.to_json()
    runtime = await runtime_of(schemas, registered, schema.version, settings.PREDICT_RUNTIME)
    return {**entry, "version": schema.version, "runtime": runtime, "output": document["output"],
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
        *(describe(m, r, schemas, client, settings) for m, r in settings.models.items())
    )
    return json_response({"alias": settings.MODEL_ALIAS, "models": found})
