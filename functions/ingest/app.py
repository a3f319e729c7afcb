"""Ingest function: the FastAPI app and `handler` for API Gateway HTTP (v2) and REST (v1).

Behind API Gateway the function is reachable from anywhere: it refuses to start without a key
unless INGEST_AUTH=none says so (streamfn.api.auth)."""

from mangum import Mangum

from streamfn.api import auth
from streamfn.app import create_app
from streamfn.core import logs
from streamfn.core.environment import get_settings

logs.configure("streamfn-ingest")
auth.check_start(get_settings(), host=None)
app = create_app()
handler = Mangum(app, lifespan="off")
