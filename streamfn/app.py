"""The app the ingest function serves: the ingest's routes and the console, one Redis binding, one
error policy, one key check. The same object runs under uvicorn and, wrapped by Mangum, on
Lambda; whether it may start without a key is its entry point's question (streamfn.api.auth)."""

from __future__ import annotations

from fastapi import FastAPI

from streamfn import __version__
from streamfn.api import responses
from streamfn.api.auth import KeyRequired
from streamfn.api.deps import RedisBinding
from streamfn.api.headers import SecurityHeaders
from streamfn.console import api as console
from streamfn.core.environment import get_settings
from streamfn.core.settings import Settings
from streamfn.ingest import openapi
from streamfn.ingest.routes import models, monitoring, predict, predictions, service
from streamfn.ingest.schema_cache import SchemaCache


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for these settings (default: the environment's)."""
    settings = settings or get_settings()
    # The document and its page are served by streamfn.ingest.openapi, from the live schemas.
    app = FastAPI(title=openapi.TITLE, version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None)  # fmt: skip
    app.state.settings = settings
    app.state.redis = RedisBinding(settings)
    app.state.schemas = SchemaCache(settings)
    responses.install(app)
    openapi.install(app)
    for feature in (predict, predictions, service, models, monitoring):
        app.include_router(feature.router)
    # The console's page, its JSON, and GET /models and /monitoring again under /ui/api/.
    console.install(app, settings, {"models": models.models, "monitoring": monitoring.monitoring})
    if settings.INGEST_API_KEY is not None or settings.FEEDBACK_API_KEY is not None:
        app.add_middleware(KeyRequired, ingest=settings.INGEST_API_KEY,
                           feedback=settings.FEEDBACK_API_KEY)  # fmt: skip
    app.add_middleware(SecurityHeaders)  # the last added runs first: on every answer, 401s too
    return app
