"""How the poller calls the infer function: in this process, through the Lambda Invoke API, or
with an HTTP POST to a function platform (OpenFaaS, Knative, Cloud Run: `INFER_URL`).

Each way gives the batch event and reads `batchItemFailures` back; a function that fails the
batch whole says why (`errorType`), so that an outage is told from a crash the same way. The
poller owns retries: no invoker sends a batch twice by itself. A poller that invokes a function
elsewhere imports nothing of the infer side (no pandas, no mlflow): the in-process invoker
imports it only when it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.aws import aws_session
from streamfn.core.settings import Settings
from streamfn.stream.base import INVOKE_TIMEOUT_S
from streamfn.stream.events import BatchResponse

Invoker = Callable[[dict[str, Any]], BatchResponse]


class InvokeError(RuntimeError):
    """The infer function failed the whole batch (a dependency is down, or the call failed)."""

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type  # the function's errorType, when it answered one


# What the infer function raises when a shared dependency is down (streamfn.infer.handler).
OUTAGE = "DependencyError"


def is_outage(error: BaseException) -> bool:
    """Whether a whole-batch failure is an outage (the function not reached, or reporting a
    dependency down: retried as it is, however long it lasts) rather than the function failing
    on the batch's content (a crash: retried a bounded number of times)."""
    if isinstance(error, InvokeError):
        return error.error_type == OUTAGE
    unreached = (BotoCoreError, ClientError, httpx.TransportError)
    return isinstance(error, unreached) or type(error).__name__ == OUTAGE


def in_process(settings: Settings) -> Invoker:
    """Call the infer handler directly: this process is the warm container, warmed now."""
    from streamfn.infer import handler

    context = handler.build_context(settings)
    handler.warm(context)
    return lambda event: handler.handle(event, context)


def through_lambda(settings: Settings) -> Invoker:
    """Call INFER_FUNCTION_NAME with boto3 (AWS, `sam local start-lambda`, or the RIE)."""
    client = aws_session(settings).client(
        "lambda",
        endpoint_url=settings.AWS_ENDPOINT_URL_LAMBDA,
        # The poller owns retries (redelivery after CLAIM_IDLE_MS); boto3 retrying an invoke
        # would run the same batch twice concurrently.
        config=Config(
            read_timeout=INVOKE_TIMEOUT_S, connect_timeout=5, retries={"max_attempts": 0}
        ),
    )
    name = settings.INFER_FUNCTION_NAME

    def invoke(event: dict[str, Any]) -> BatchResponse:
        reply = client.invoke(FunctionName=name, Payload=orjson.dumps(event))
        payload = reply["Payload"].read()
        if reply.get("FunctionError"):
            detail = payload[:500].decode(errors="replace")
            raise InvokeError(f"{name} failed: {detail}", _error_type(payload))
        return orjson.loads(payload)

    return invoke


# A gateway in front of a function that is not there yet, or not ready (scaling from zero).
_GATEWAY_DOWN = frozenset({502, 503, 504})


def over_http(settings: Settings) -> Invoker:
    """POST the event to INFER_URL (the function's URL on a gateway); its JSON answer is the
    handler's. A failure answers with a status of 4xx or 5xx and, from streamfn's own infer
    app, `errorType` as Lambda's does; a gateway's 502-504 (no function behind it) and a
    connection that fails are outages."""
    url = str(settings.INFER_URL)
    client = httpx.Client(timeout=httpx.Timeout(INVOKE_TIMEOUT_S, connect=5.0))

    def invoke(event: dict[str, Any]) -> BatchResponse:
        reply = client.post(url, content=orjson.dumps(event),
                            headers={"content-type": "application/json"})  # fmt: skip
        if reply.is_success:
            return orjson.loads(reply.content)
        kind = _error_type(reply.content) or (OUTAGE if reply.status_code in _GATEWAY_DOWN else "")
        detail = reply.content[:500].decode(errors="replace")
        raise InvokeError(f"{url} answered {reply.status_code}: {detail}", kind)

    return invoke


def _error_type(payload: bytes) -> str:
    try:
        answer = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ""
    return str(answer.get("errorType", "")) if isinstance(answer, dict) else ""


def from_settings(settings: Settings) -> Invoker:
    """Over HTTP when INFER_URL is set, through Lambda when INFER_FUNCTION_NAME is, else in
    process (the settings refuse both at once)."""
    if settings.INFER_URL:
        return over_http(settings)
    if settings.INFER_FUNCTION_NAME:
        return through_lambda(settings)
    return in_process(settings)
