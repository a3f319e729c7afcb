"""The ingest function's FastAPI app: the routes of each feature, one Redis binding, one error
policy. The same object runs under uvicorn and, wrapped by Mangum, on Lambda."""

from __future__ import annotations

from fastapi import FastAPI

from streamfn import __version__
from streamfn.config import Settings, get_settings
from streamfn.ingest import responses
from streamfn.ingest.deps import RedisBinding
from streamfn.ingest.routes import models, predict, predictions, service


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ingest app for these settings (default: the environment's)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="streamfn ingest",
        version=__version__,
        description="Validates records and appends them to the Redis Stream for batched inference.",
    )
    app.state.settings = settings
    app.state.redis = RedisBinding(settings)
    responses.install(app)
    for feature in (predict, predictions, service, models):
        app.include_router(feature.router)
    return app
