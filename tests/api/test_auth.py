"""Closed unless opened: a process beyond loopback refuses to start without a key (unless
INGEST_AUTH=none), and with a key every route but the open ones asks for it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from streamfn.api.auth import check_start
from streamfn.app import create_app
from streamfn.core.settings import ConfigError, Settings
from tests.conftest import free_port, wait_for
from tests.factories import SEED_EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
KEY = "s3cret"
BEYOND = ["0.0.0.0", "::", "192.168.1.20", "ingest.example.com", None]  # None: API Gateway
LOOPBACK = ["127.0.0.1", "localhost", "::1", "127.0.0.2"]


@pytest.fixture(autouse=True)
def _start_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "streamfn.api.auth")


def auth_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("ingest auth")]


@pytest.mark.parametrize("host", BEYOND)
def test_beyond_loopback_without_a_key_refuses_to_start(
    make_settings: Callable[..., Settings], host: str | None
) -> None:
    with pytest.raises(ConfigError, match="INGEST_API_KEY is not set") as error:
        check_start(make_settings(), host)
    assert "INGEST_AUTH=none" in str(error.value)


@pytest.mark.parametrize("host", BEYOND)
def test_none_said_on_purpose_starts_open_and_says_so_once(
    make_settings: Callable[..., Settings], host: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    check_start(make_settings(INGEST_AUTH="none"), host)
    [line] = auth_lines(caplog)
    assert (line.levelno, line.auth, line.reason) == (logging.WARNING, "none", "INGEST_AUTH=none")


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_needs_no_key_and_says_so_once(
    make_settings: Callable[..., Settings], host: str, caplog: pytest.LogCaptureFixture
) -> None:
    check_start(make_settings(), host)
    [line] = auth_lines(caplog)
    assert (line.auth, line.reason) == ("none", "loopback only")
    with pytest.raises(ConfigError, match="INGEST_AUTH=key"):
        check_start(make_settings(INGEST_AUTH="key"), host)


@pytest.mark.parametrize("host", [*BEYOND, *LOOPBACK])
def test_a_key_starts_anywhere_and_says_so_once(
    make_settings: Callable[..., Settings], host: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    check_start(make_settings(INGEST_API_KEY=KEY, INGEST_AUTH="none"), host)
    [line] = auth_lines(caplog)
    assert (line.levelno, line.auth) == (logging.INFO, "key")


def run_ingest(settings: Settings, host: str, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env |= {"REDIS_URL": settings.REDIS_URL, "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
            **extra}  # fmt: skip
    command = [sys.executable, "-m", "streamfn.cli", "ingest", "--host", host, "--port",
               str(free_port())]  # fmt: skip
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def test_streamfn_ingest_on_every_interface_without_a_key_exits_naming_both_variables(
    settings: Settings,
) -> None:
    process = run_ingest(settings, "0.0.0.0")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    assert "INGEST_API_KEY" in stderr
    assert "INGEST_AUTH=none" in stderr


def test_the_lambda_handler_refuses_to_load_without_a_key(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env |= {"REDIS_URL": settings.REDIS_URL, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    code = "import functions.ingest.app"
    refused = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode != 0
    assert "INGEST_API_KEY is not set and ingest listens behind API Gateway" in refused.stderr
    opened = subprocess.run([sys.executable, "-c", code], env={**env, "INGEST_AUTH": "none"},
                            cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert '"auth":"none"' in opened.stderr


# ---- with a key, every route but the open ones asks for it ---------------------------------

# What a stranger could read or write before issue 24: every data route, the console's included.
GUARDED = [
    ("GET", "/predictions/1764141569123-0"),
    ("GET", "/monitoring"),
    ("GET", "/models"),
    ("GET", "/metrics"),
    ("POST", "/feedback"),
    ("POST", "/predict_stream?model=svm"),
    ("GET", "/ui/api/status"),
    ("GET", "/ui/api/models"),
    ("GET", "/ui/api/monitoring"),
    ("GET", "/ui/api/objects"),
    ("GET", "/ui/api/rows"),
    ("GET", "/ui/api/objects/predictions/model=svm/date=2026-12-02/1-0_0123456789abcdef.csv"),
    ("GET", "/a/route/added/later"),
]
OPEN = ["/health", "/docs", "/openapi.json", "/ui", "/ui/static/console.js",
        "/docs/static/docs.js", "/docs/static/vendor/swagger-ui.css"]  # fmt: skip


@pytest.fixture
def keyed(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(INGEST_API_KEY=KEY))) as client:
        yield client


def request(client: TestClient, method: str, path: str, **headers: str) -> httpx.Response:
    headers = {"content-type": "application/json", **headers}
    content = orjson.dumps(SEED_EXAMPLE) if method == "POST" else None
    return client.request(method, path, content=content, headers=headers)


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_every_data_route_asks_for_the_key(keyed: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + " "}):
        refused = request(keyed, method, path, **headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.json() == {"detail": "missing or wrong X-API-Key"}
        assert refused.headers["www-authenticate"] == "ApiKey"
        assert refused.headers["x-content-type-options"] == "nosniff"
    assert request(keyed, method, path, **{"X-API-Key": KEY}).status_code != 401


@pytest.mark.parametrize("path", OPEN)
def test_the_open_routes_answer_without_it(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_metrics_port_serves_counts_apart_and_open(settings: Settings) -> None:
    metrics_port, process = free_port(), None
    try:
        process = run_ingest(settings, "127.0.0.1", INGEST_API_KEY=KEY,
                             METRICS_PORT=str(metrics_port))  # fmt: skip
        apart = f"http://127.0.0.1:{metrics_port}"
        wait_for(lambda: httpx.get(f"{apart}/health").status_code == 200, timeout=60)
        assert "streamfn_ingest_requests_total" in httpx.get(f"{apart}/metrics").text
    finally:
        if process is not None:
            process.terminate()
            process.communicate(timeout=15)


def test_the_document_states_the_key_on_every_guarded_operation(keyed: TestClient) -> None:
    paths = keyed.get("/openapi.json").json()["paths"]
    assert {"/predict_stream", "/predictions/{message_id}", "/feedback", "/metrics"} <= set(paths)
    for path, operations in paths.items():
        for method, operation in operations.items():
            named = {p["name"] for p in operation.get("parameters", [])}
            guarded = path not in ("/health",)
            assert ("401" in operation["responses"]) == guarded, (method, path)
            assert ("X-API-Key" in named) == guarded, (method, path)


# ---- ground truth has a key of its own -------------------------------------------------------

LABELS = {"labels": [{"message_id": "1764141569123-0", "record_index": 0, "label": "High"}]}


def feedback(client: TestClient, key: str | None) -> int:
    headers = {} if key is None else {"X-API-Key": key}
    return client.post("/feedback", json=LABELS, headers=headers).status_code


def test_with_a_feedback_key_the_producers_key_cannot_write_labels(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(INGEST_API_KEY=KEY, FEEDBACK_API_KEY="labels"))
    with TestClient(app) as client:
        assert feedback(client, KEY) == 401
        assert feedback(client, None) == 401
        assert feedback(client, "labels") == 422  # past the key: the message is unknown
        # The feedback key opens nothing else.
        assert client.get("/monitoring", headers={"X-API-Key": "labels"}).status_code == 401
        assert client.get("/monitoring", headers={"X-API-Key": KEY}).status_code == 200


def test_without_a_feedback_key_the_ingest_key_guards_feedback(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings(INGEST_API_KEY=KEY))) as client:
        assert (feedback(client, None), feedback(client, KEY)) == (401, 422)
    # A feedback key alone (an ingest open on purpose) still guards the labels.
    alone = make_settings(INGEST_AUTH="none", FEEDBACK_API_KEY="labels")
    with TestClient(create_app(alone)) as client:
        assert (feedback(client, None), feedback(client, "labels")) == (401, 422)
        assert client.get("/monitoring").status_code == 200
