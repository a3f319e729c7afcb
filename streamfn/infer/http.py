"""The infer function served over HTTP, for a function platform that calls its functions that
way (OpenFaaS's of-watchdog in http mode, Knative, Cloud Run): `streamfn infer --port`.

POST / takes a batch event as the Lambda handler does and answers its `batchItemFailures`. A batch
that fails whole answers as Lambda's Invoke API reports a function error: `errorType` and
`errorMessage`, with 503 when a shared dependency is down (the poller retries it however long
the outage lasts) and 500 for anything else (a crash: retried a bounded number of times). One
batch at a time per process, as Lambda gives one invocation at a time to a container: the models
and clients are this process's, warm.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from streamfn.core.settings import Settings
from streamfn.infer import handler

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """The app of one warm infer process."""
    context = handler.build_context(settings)
    handler.warm(context)
    one_at_a_time = threading.Lock()

    def run(event: dict[str, Any]) -> Response:
        with one_at_a_time:
            try:
                return _json(handler.handle(event, context))
            except handler.DependencyError as error:
                return _json(_error(error), 503)
            except Exception as error:  # the function failed on this batch: say so, as Lambda does
                log.exception("batch failed whole")
                return _json(_error(error), 500)

    app = FastAPI(title="streamfn infer", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/")
    async def invoke(request: Request) -> Response:
        try:
            event = orjson.loads(await request.body())
        except orjson.JSONDecodeError as error:
            return _json({"errorType": "InvalidEvent", "errorMessage": str(error)}, 400)
        return await run_in_threadpool(run, event)

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "ok", "models": context.models.served_versions()})

    return app


def _error(error: Exception) -> dict[str, str]:
    return {"errorType": type(error).__name__, "errorMessage": str(error)}


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")
