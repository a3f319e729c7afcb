"""The ingest function as deployed: the Lambda handler with API Gateway events, uvicorn, outages."""

from __future__ import annotations

import base64
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx
import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.environment import get_settings
from streamfn.core.settings import Settings
from tests.conftest import RedisServer, free_port, wait_for
from tests.factories import SEED_EXAMPLE, body, http_api_v2_event, rest_api_v1_event

ROOT = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}


def load_handler_module(name: str) -> ModuleType:
    """Import functions/<name>/app.py the way the Lambda runtime does, under a unique name."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_function", ROOT / "functions" / name / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ingest_function(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.MLFLOW_TRACKING_URI)
    monkeypatch.setenv("INGEST_AUTH", "none")  # behind API Gateway, open on purpose
    get_settings.cache_clear()
    yield load_handler_module("ingest")
    get_settings.cache_clear()


def test_http_api_v2_event_appends_once(ingest_function: ModuleType, redis_url: str) -> None:
    answer = ingest_function.handler(http_api_v2_event(orjson.dumps(SEED_EXAMPLE)), None)
    assert answer["statusCode"] == 202, answer
    payload = answer["body"]
    reply = orjson.loads(base64.b64decode(payload) if answer.get("isBase64Encoded") else payload)
    entries = redis.Redis.from_url(redis_url).xrange("mlops_stream")
    assert [e[0].decode() for e in entries] == [reply["message_id"]]


def test_rest_api_v1_event_appends_once(ingest_function: ModuleType, redis_url: str) -> None:
    answer = ingest_function.handler(
        rest_api_v1_event(orjson.dumps(SEED_EXAMPLE), model="knn"), None
    )
    assert answer["statusCode"] == 202, answer
    reply = orjson.loads(answer["body"])
    assert reply["model"] == "knn"
    status = ingest_function.handler(
        rest_api_v1_event(b"", path=f"/predictions/{reply['message_id']}", method="GET"), None
    )
    assert orjson.loads(status["body"])["status"] == "pending"
    assert redis.Redis.from_url(redis_url).xlen("mlops_stream") == 1


def test_lambda_bad_input_is_422_and_not_appended(
    ingest_function: ModuleType, redis_url: str
) -> None:
    answer = ingest_function.handler(http_api_v2_event(body({"Sleep Hours": "seven"})), None)
    assert answer["statusCode"] == 422
    assert redis.Redis.from_url(redis_url).xlen("mlops_stream") == 0


def test_redis_outage_is_503_with_retry_after_then_recovers(
    private_redis: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(REDIS_URL=private_redis.url))
    with TestClient(app) as client:

        def send() -> httpx.Response:
            return client.post(
                "/predict_stream?model=svm", content=orjson.dumps(SEED_EXAMPLE), headers=JSON
            )

        assert send().status_code == 202
        private_redis.kill()
        down = send()
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"
        assert "Redis" in down.json()["detail"]
        assert client.get("/health").status_code == 503
        private_redis.start()
        wait_for(lambda: send().status_code == 202)
        assert client.get("/health").status_code == 200
    assert redis.Redis.from_url(private_redis.url).xlen("mlops_stream") >= 1


def test_streamfn_ingest_serves_over_http(settings: Settings, redis_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
    }
    command = [
        sys.executable,
        "-m",
        "streamfn.cli",
        "ingest",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, timeout=30)
        # The first request reads the model's signature from MLflow: seconds on a busy machine.
        answer = httpx.post(f"{base}/predict_stream?model=lightgbm", json=SEED_EXAMPLE, timeout=60)
        assert answer.status_code == 202
        message_id = answer.json()["message_id"]
        assert httpx.get(f"{base}/predictions/{message_id}").json()["status"] == "pending"
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert redis.Redis.from_url(redis_url).xlen("mlops_stream") == 1


def test_bad_configuration_fails_at_start_naming_the_variable(redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "MAX_RECORDS": "lots"}
    done = subprocess.run(
        [sys.executable, "-m", "streamfn.cli", "ingest", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3  # a configuration error
    assert "MAX_RECORDS" in done.stderr


# The ingest zip holds no pandas, scikit-learn or MLflow, and cannot hold the pinned numpy (Lambda's
# Python 3.11 has glibc 2.26): every route, the monitoring ones included, must run without them.
HEAVY = ("numpy", "pandas", "sklearn", "mlflow", "lightgbm", "scipy")
CALL_ROUTES_AND_LIST_MODULES = """
import json, sys
from functions.ingest.app import handler
from tests.factories import http_api_v2_event
monitoring = http_api_v2_event(b"", path="/monitoring", query="model=svm")
monitoring["requestContext"]["http"]["method"] = "GET"
label = b'{"labels": [{"message_id": "1-0", "record_index": 0, "label": "High"}]}'
feedback = http_api_v2_event(label, path="/feedback", query="")
codes = [handler(event, None)["statusCode"] for event in (monitoring, feedback)]
print(json.dumps({"codes": codes, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def test_the_ingest_function_answers_monitoring_routes_without_the_numerical_stack(
    redis_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env |= {"REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "INGEST_AUTH": "none"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + CALL_ROUTES_AND_LIST_MODULES],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = orjson.loads(done.stdout.strip().splitlines()[-1])
    # No windows yet: an empty list; the label names no message: 422.
    assert answer == {"codes": [200, 422], "heavy": []}
