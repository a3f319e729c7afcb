"""Invoking infer through the Lambda Invoke API (boto3), against a stand-in of the emulator."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamfn.core.settings import Settings
from streamfn.local.stack import free_port
from streamfn.poller import invoke
from streamfn.poller.loop import InvokeError
from tests.descriptors.lambda_api import serve
from tests.factories import batch_event, sqs_record

EVENT = batch_event(sqs_record("1-0", "svm", [{"Designation": 1}]))


def answer_first_as_failed(event: dict[str, Any], _context: object) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def raise_outage(_event: dict[str, Any], _context: object) -> dict[str, Any]:
    raise RuntimeError("S3 is down")


@pytest.fixture
def lambda_endpoint() -> Iterator[Callable[[Callable[..., Any]], str]]:
    servers = []

    def start(handler: Callable[..., Any]) -> str:
        server = serve(handler, "127.0.0.1", free_port())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def lambda_settings(make_settings: Callable[..., Settings], endpoint: str) -> Settings:
    return make_settings(
        INFER_FUNCTION_NAME="function", AWS_ENDPOINT_URL_LAMBDA=endpoint,
        AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
    )  # fmt: skip


def test_the_answer_of_the_function_comes_back(
    make_settings: Callable[..., Settings], lambda_endpoint: Callable[..., str]
) -> None:
    settings = lambda_settings(make_settings, lambda_endpoint(answer_first_as_failed))
    call = invoke.from_settings(settings)
    assert call(EVENT) == {"batchItemFailures": [{"itemIdentifier": "1-0"}]}


def test_a_function_error_fails_the_whole_batch(
    make_settings: Callable[..., Settings], lambda_endpoint: Callable[..., str]
) -> None:
    settings = lambda_settings(make_settings, lambda_endpoint(raise_outage))
    with pytest.raises(InvokeError, match="S3 is down"):
        invoke.from_settings(settings)(EVENT)


# What a poller that invokes Lambda must never import: the infer side's numerical stack.
HEAVY = ("numpy", "pandas", "mlflow", "sklearn", "lightgbm", "scipy")
POLL_AND_LIST_MODULES = """
import sys
from streamfn.cli import main
code = main(["poll", "--burst"])
print(",".join(m for m in {heavy!r} if m in sys.modules))
sys.exit(code)
"""


def test_a_poller_invoking_lambda_imports_no_numerical_stack(
    lambda_endpoint: Callable[[Callable[..., Any]], str], redis_url: str, tmp_path: Any
) -> None:
    import os
    import subprocess
    import sys

    import orjson
    import redis

    calls: list[int] = []

    def function(event: dict[str, Any], _context: object) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        return {"batchItemFailures": []}

    endpoint = lambda_endpoint(function)
    redis.Redis.from_url(redis_url).xadd(
        "mlops_stream", {"model": "svm", "data": orjson.dumps([{"Designation": 1}]),
                         "received_at": "1"},
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env |= {"REDIS_URL": redis_url, "INFER_FUNCTION_NAME": "function",
            "AWS_ENDPOINT_URL_LAMBDA": endpoint, "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", POLL_AND_LIST_MODULES.format(heavy=HEAVY)],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls == [1]  # the entry went to the function
    assert done.stdout.strip() == "", f"imported: {done.stdout}"
