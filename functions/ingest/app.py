"""Ingest function: the FastAPI app and `handler` for API Gateway HTTP (v2) and REST (v1)."""

from mangum import Mangum

from streamfn.app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
