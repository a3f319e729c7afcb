"""The producer function served over HTTP, for a function platform (OpenFaaS and its cron
connector, Knative, Cloud Run): `streamfn produce --http-port`. POST / takes the producer's
event (the plan: count, rate, models, batch, seed, concurrency, drift, labels) as the Lambda
function does and answers its tally."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from streamfn.core.settings import Settings
from streamfn.data import producer
from streamfn.data.plan import plan_from_event


def create_app(settings: Settings) -> FastAPI:
    """The app of the producer function."""
    app = FastAPI(title="streamfn produce", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/")
    async def produce(request: Request) -> Response:
        body = await request.body()
        try:
            plan = plan_from_event(orjson.loads(body) if body else {})
        except (orjson.JSONDecodeError, TypeError, ValueError) as error:
            answer = {"errorType": "InvalidPlan", "errorMessage": str(error)}
            return Response(orjson.dumps(answer), 400, media_type="application/json")
        tally = await producer.produce(settings, plan, None)
        return Response(orjson.dumps(tally.as_dict()), media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    return app
