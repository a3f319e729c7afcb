"""How the poller calls the infer function: in this process, or through the Lambda Invoke API."""

from __future__ import annotations

from typing import Any

import orjson
from botocore.config import Config

from streamfn import batch
from streamfn.aws import aws_session
from streamfn.config import Settings
from streamfn.poller import InvokeError, Invoker

INVOKE_TIMEOUT_S = 120  # a cold infer container loads three models before answering


def in_process(settings: Settings) -> Invoker:
    """Call the infer handler directly: this process is the warm container, warmed now."""
    context = batch.build_context(settings)
    batch.warm(context)
    return lambda event: batch.handle(event, context)


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

    def invoke(event: dict[str, Any]) -> batch.BatchResponse:
        reply = client.invoke(FunctionName=name, Payload=orjson.dumps(event))
        payload = reply["Payload"].read()
        if reply.get("FunctionError"):
            raise InvokeError(f"{name} failed: {payload[:500].decode(errors='replace')}")
        return orjson.loads(payload)

    return invoke


def from_settings(settings: Settings) -> Invoker:
    """Through Lambda when INFER_FUNCTION_NAME is set, else in process."""
    return through_lambda(settings) if settings.INFER_FUNCTION_NAME else in_process(settings)
