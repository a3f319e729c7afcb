"""The ingest function's FastAPI app: the routes of each feature, one Redis binding, one error
policy. The same object runs under uvicorn and, wrapped by Mangum, on Lambda."""

from __future__ import annotations

from fastapi import FastAPI

from streamfn import __version__
from streamfn.console import api as console
from streamfn.core.settings import Settings, get_settings
from streamfn.ingest import openapi, responses
from streamfn.ingest.deps import RedisBinding
from streamfn.ingest.routes import models, monitoring, predict, predictions, service
from streamfn.ingest.schema_cache import SchemaCache


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ingest app for these settings (default: the environment's)."""
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
    console.install(app, settings)
    return app
