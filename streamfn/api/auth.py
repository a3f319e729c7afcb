"""The API key: with INGEST_API_KEY set, a request without the matching X-API-Key is refused."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

from streamfn.core import metrics
from streamfn.core.settings import Settings


def check_api_key(request: Request, settings: Settings) -> None:
    """With INGEST_API_KEY set, refuse requests without the matching X-API-Key header (401)."""
    expected = settings.INGEST_API_KEY
    if expected is None:
        return
    sent = request.headers.get("x-api-key")
    if sent is None or not secrets.compare_digest(
        sent.encode(), expected.get_secret_value().encode()
    ):
        metrics.INGEST_REJECTIONS.labels("unauthorized").inc()
        raise HTTPException(401, "missing or wrong X-API-Key", {"WWW-Authenticate": "ApiKey"})
