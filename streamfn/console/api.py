"""GET /ui: the console page, its static files, and the JSON it reads under /ui/api/.

With INGEST_API_KEY set, every /ui/api/ route asks for the X-API-Key header (streamfn.api.auth;
the page prompts for the key and keeps it in the tab's session storage, never in a URL). The page
itself holds no data and is served to anyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from streamfn.api.deps import RedisDep, SettingsDep
from streamfn.api.inputs import ModelQuery, known_model
from streamfn.api.responses import json_response, unavailable
from streamfn.console import overview
from streamfn.console.objects import (
    ObjectMissingError,
    ObjectReader,
    ObjectsUnavailableError,
    RowsUnreadableError,
    content_type,
)
from streamfn.core.settings import Settings

STATIC = Path(__file__).parent / "static"
ROWS_SHOWN = 25
router = APIRouter(prefix="/ui", include_in_schema=False)


def install(app: FastAPI, settings: Settings, answers: dict[str, Callable[..., Any]]) -> None:
    """Serve the console on this app; `answers` are routes of the app the page reads too (by
    name, under /ui/api/)."""
    app.state.objects = ObjectReader(settings)
    for name, endpoint in answers.items():
        app.add_api_route(f"/ui/api/{name}", endpoint, methods=["GET"], include_in_schema=False)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(ObjectsUnavailableError, _s3_down)  # type: ignore[arg-type]
    app.add_exception_handler(ObjectMissingError, _missing)  # type: ignore[arg-type]
    app.add_exception_handler(RowsUnreadableError, _unreadable)  # type: ignore[arg-type]


async def _s3_down(request: Request, error: ObjectsUnavailableError) -> Response:
    return unavailable(f"S3 cannot answer: {error}")


async def _unreadable(request: Request, error: RowsUnreadableError) -> Response:
    return json_response({"detail": f"rows not readable here: {error}"}, status_code=501)


async def _missing(request: Request, error: ObjectMissingError) -> Response:
    return json_response({"detail": str(error)}, status_code=404)


@router.get("")
async def page() -> FileResponse:
    """The page (no data in it: it reads the JSON routes)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/api/status")
async def status(redis: RedisDep, settings: SettingsDep) -> Response:
    """Totals and the records/s series, lag, pending, dead letters, pollers, versions served."""
    client, _ = redis.bind()
    found = await overview.status(client, settings, time.time())
    found["versions"] = await overview.versions(client, settings.keys, list(settings.models))
    return json_response(found)


@router.get("/api/objects")
async def objects(redis: RedisDep, settings: SettingsDep) -> Response:
    """The newest partitions (model and date): objects, rows, the newest object."""
    client, _ = redis.bind()
    return json_response({"partitions": await overview.partitions(client, settings.keys)})


@router.get("/api/rows")
async def rows(
    request: Request,
    redis: RedisDep,
    settings: SettingsDep,
    model: ModelQuery = None,
) -> Response:
    """The newest prediction rows: those of each model's newest object, newest first."""
    if model is not None:
        known_model(model, settings)
    client, _ = redis.bind()
    newest = overview.newest_objects(await overview.partitions(client, settings.keys), model)
    reader: ObjectReader = request.app.state.objects
    tables = await asyncio.gather(*(asyncio.to_thread(reader.rows, key) for key in newest))
    return json_response(overview.merge_rows(tables, ROWS_SHOWN))


@router.get("/api/objects/{key:path}")
async def download(key: str, request: Request) -> Response:
    """One object of the bucket, through the API (the browser needs no S3 credentials)."""
    kind = content_type(key)
    if kind is None:
        raise ObjectMissingError(f"{key!r} is not an object the console serves")
    reader: ObjectReader = request.app.state.objects
    body = await asyncio.to_thread(reader.body, key)
    name = key.rsplit("/", 1)[-1]
    return Response(body, media_type=kind,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip
