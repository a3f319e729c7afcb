"""GET /models: the configured models and the version each alias points to."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from streamfn.config import Settings
from streamfn.constants import API_NAMES, REGISTERED_MODELS
from streamfn.ingest.deps import SettingsDep
from streamfn.ingest.responses import json_response
from streamfn.registry import NotRegisteredError, RegistryError, open_registry

router = APIRouter()


def served_version(settings: Settings, name: str) -> dict[str, Any]:
    """The version the alias points to (else the latest), or what stopped the lookup."""
    alias = settings.MODEL_ALIAS
    entry: dict[str, Any] = {"registered_name": name, "alias": alias, "version": None}
    try:
        found = open_registry(settings.MLFLOW_TRACKING_URI).alias_version(name, alias)
    except ImportError:  # a store without a server needs the mlflow package, absent here
        return {**entry, "error": "the registry is not an HTTP server; ask the infer function"}
    except NotRegisteredError:
        return {**entry, "error": "not registered: run `streamfn train`"}
    except RegistryError as error:
        return {**entry, "error": str(error)}
    if not found.via_alias:
        return {**entry, "version": found.version,
                "error": f"alias {alias!r} absent; latest version served"}  # fmt: skip
    return {**entry, "version": found.version}


@router.get("/models", summary="API names, registered names and the alias's version")
async def models(settings: SettingsDep) -> Response:
    """Each model's registered name and served version, looked up concurrently."""
    lookups = [
        asyncio.to_thread(served_version, settings, REGISTERED_MODELS[name]) for name in API_NAMES
    ]
    found = await asyncio.gather(*lookups)
    return json_response(
        {"models": [{"model": n, **f} for n, f in zip(API_NAMES, found, strict=True)]}
    )
