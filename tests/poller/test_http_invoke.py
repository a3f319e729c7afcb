"""Invoking infer over HTTP (INFER_URL): the infer function served by `streamfn infer`, as a
function platform runs it (OpenFaaS, Knative, Cloud Run), and a poller POSTing batches to it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from streamfn.core.settings import Settings
from streamfn.local.stack import free_port
from streamfn.poller import invoke
from streamfn.poller.invoke import InvokeError, is_outage
from tests.conftest import S3_TEST_ENV, TcpProxy, rows_in, s3_client, wait_for
from tests.factories import SEED, batch_event, full_record, redis_poller, sqs_record

pytestmark = pytest.mark.slow


@contextmanager
def infer_served(env: dict[str, str], log: Path) -> Iterator[str]:
    """`streamfn infer` on a free port with these variables; its URL once it is healthy."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamfn.cli", "infer", "--port", str(port)],
            env={**os.environ, **S3_TEST_ENV, **env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, timeout=120)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def served(
    redis_url: str, sqlite_registry: str, s3_server: str, tmp_path: Path
) -> Iterator[TcpProxy]:
    """`streamfn infer` reached through a proxy the test can cut."""
    s3_client(s3_server).create_bucket(Bucket="predictions")
    env = {"REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": sqlite_registry,
           "AWS_ENDPOINT_URL_S3": s3_server}  # fmt: skip
    with infer_served(env, tmp_path / "infer.log") as url:
        yield TcpProxy(int(url.rsplit(":", 1)[1]))


def http_settings(make_settings: Callable[..., Settings], url: str, s3: str) -> Settings:
    return make_settings(INFER_URL=url, AWS_ENDPOINT_URL_S3=s3, **S3_TEST_ENV)


def test_a_poller_posts_its_batches_and_rows_are_written_once(
    served: TcpProxy, make_settings: Callable[..., Settings], redis_url: str, s3_server: str
) -> None:
    settings = http_settings(make_settings, served.uri, s3_server)
    r = redis.Redis.from_url(redis_url)
    ids = [r.xadd(settings.STREAM_KEY, {"model": m, "data": b'[{"Designation": 2}]',
                                        "received_at": "1700000000000"}).decode()
           for m in ("svm", "knn", "lightgbm", "svm")]  # fmt: skip
    poison = r.xadd(settings.STREAM_KEY, {"model": "nope", "data": b"[]"}).decode()
    poller = redis_poller(settings, r, invoke.from_settings(settings))
    assert poller.run(burst=True) == 5
    assert rows_in(s3_client(s3_server)) == {(i, "0"): 1 for i in ids}
    # The poison message was named in batchItemFailures: left pending, its error recorded.
    assert r.xpending(settings.STREAM_KEY, settings.CONSUMER_GROUP)["pending"] == 1
    assert b"unknown model" in r.get(settings.keys.result(poison))
    # The same batch again (a redelivery): answered, and nothing written twice.
    event = batch_event(*(sqs_record(i, "svm", SEED) for i in ids[:1]))
    assert invoke.from_settings(settings)(event) == {"batchItemFailures": []}
    assert rows_in(s3_client(s3_server)) == {(i, "0"): 1 for i in ids}


def test_a_function_down_is_an_outage_and_a_crash_is_not(
    served: TcpProxy, make_settings: Callable[..., Settings], s3_server: str
) -> None:
    proxy = served
    call = invoke.from_settings(http_settings(make_settings, proxy.uri, s3_server))
    event = batch_event(sqs_record("1-0", "svm", [full_record()]))
    proxy.stop()  # the function not reached: an outage, retried however long it lasts
    with pytest.raises(httpx.TransportError) as unreached:
        call(event)
    assert is_outage(unreached.value)
    proxy.start()
    # Not an event: the function fails on the batch itself, which is no outage.
    with pytest.raises(InvokeError) as crashed:
        call({"Records": "not a list"})
    assert not is_outage(crashed.value)
    assert "500" in str(crashed.value)
    assert call(event) == {"batchItemFailures": []}


def test_a_dependency_down_answers_503_as_an_outage(
    make_settings: Callable[..., Settings], sqlite_registry: str, redis_url: str, tmp_path: Path
) -> None:
    dead_s3 = f"http://127.0.0.1:{free_port()}"  # nothing listens: S3 is down
    env = {"REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": sqlite_registry,
           "AWS_ENDPOINT_URL_S3": dead_s3}  # fmt: skip
    with infer_served(env, tmp_path / "infer.log") as url:
        call = invoke.from_settings(http_settings(make_settings, url, dead_s3))
        with pytest.raises(InvokeError, match="503") as failed:
            call(batch_event(sqs_record("2-0", "svm", [full_record()])))
    assert failed.value.error_type == "DependencyError"
    assert is_outage(failed.value)


def test_a_gateway_without_its_function_is_an_outage(
    make_settings: Callable[..., Settings], s3_server: str
) -> None:

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(502)
            self.end_headers()
            self.wfile.write(b"no endpoints available for service streamfn-infer")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/function/streamfn-infer"
        call = invoke.from_settings(http_settings(make_settings, url, s3_server))
        with pytest.raises(InvokeError, match="502") as failed:
            call(batch_event(sqs_record("3-0", "svm", [full_record()])))
        assert is_outage(failed.value)
    finally:
        server.shutdown()


def test_infer_url_and_function_name_are_one_or_the_other(
    make_settings: Callable[..., Settings],
) -> None:
    from streamfn.core.settings import ConfigError

    with pytest.raises(ConfigError, match="INFER_URL and INFER_FUNCTION_NAME"):
        make_settings(INFER_URL="http://gateway:8080/function/infer", INFER_FUNCTION_NAME="f")
