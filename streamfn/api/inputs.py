"""What routes read of a request: the `model` query, checked against MODELS, and a JSON body,
refused as soon as it is too large."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from streamfn.api.responses import BodyError
from streamfn.core.settings import Settings

ModelQuery = Annotated[str | None, Query(description="one model (default: every model)")]


def known_model(value: str, settings: Settings) -> str:
    """A configured model's API name, or a 422 that lists the valid names."""
    if value in settings.models:
        return value
    valid = ", ".join(repr(name) for name in settings.models)
    error = {"loc": ["query", "model"], "msg": f"'model' must be one of {valid}, not {value!r}"}
    raise BodyError(422, [{**error, "type": "enum", "input": value[:200]}])


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON body, refused (415, 413) on a wrong type or as soon as it exceeds `limit` bytes."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        error = {"loc": ["header", "content-type"], "type": "unsupported_media_type"}
        error["msg"] = f"Content-Type must be application/json, not {media_type or 'none'!r}"
        raise BodyError(415, [error])
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, [_too_large(limit)])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, [_too_large(limit)])
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> dict[str, Any]:
    return {"loc": ["body"], "msg": f"body over MAX_BODY_BYTES={limit} bytes", "type": "too_large"}
