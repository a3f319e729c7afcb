"""Shared fixtures: a real redis-server per session (flushed per test) and deadline polling."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from streamfn.core.settings import Settings, load_settings
from streamfn.local.stack import free_port

# The real stacks (MLflow server, moto's S3 server, a pipeline of children) some suites share.
pytest_plugins = ["tests.stacks"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), the tests on the session's MLflow server run on
    one worker: the server and its three trained models are made once, not once per worker."""
    for item in items:
        if "registry" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("mlflow-server"))


def wait_for(check: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> object:
    """Poll `check` until it returns something truthy; fail the test at the deadline.

    An exception while polling means "not yet" (a server still starting), except an
    AssertionError: a check that asserts has answered, and its message is the failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except AssertionError:
            raise  # a check that failed is an answer, not "not yet"
        except Exception:  # the thing polled may not be up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)


class TcpProxy:
    """Forwards a local port to an upstream port until stopped: an outage the test controls."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.start()

    @property
    def uri(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen again (the port is kept, so clients find it where it was)."""
        listener = socket.create_server(("127.0.0.1", self.port))
        with self._lock:
            self._sockets = [listener]
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a dead server would."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            # shutdown() wakes the threads blocked in accept()/recv(); close() alone may not.
            with contextlib.suppress(OSError):  # never connected, or closed by the peer
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass  # the proxy was stopped
        finally:
            # When one side closes, close both now. close() alone would not: the other
            # direction's thread is still blocked in recv() on that socket, so the kernel keeps it
            # open, the client never sees the FIN and reuses a dead keep-alive connection.
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@dataclass
class RedisServer:
    """A redis-server child process on a private port and directory."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not on PATH: apt-get install -y redis-server")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(client.ping)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may kill and restart."""
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def make_settings(
    redis_url: str, sqlite_registry: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Build validated settings for the test's Redis and the trained registry, ignoring the
    developer's environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    base = {"REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": sqlite_registry}
    return lambda **overrides: load_settings(**{**base, **overrides})


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default settings against the test's Redis."""
    return make_settings()


@pytest.fixture(scope="session")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store with the three models trained and registered once per session.

    Under pytest-xdist the first worker to ask trains (a minute) while the other waits; each
    worker then works on its own copy of the database, so that one's aliases and versions are
    not the other's. The artifacts stay where training wrote them: a new version writes its own.
    """
    from streamfn.data import training

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    trained = shared / "trained-registry" / "mlflow.db"
    with (shared / "trained-registry.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not trained.exists():
            training_db = trained.with_name("training.db")  # renamed once all three are in
            training_db.parent.mkdir(exist_ok=True)
            results = training.train(f"sqlite:///{training_db}", "champion")
            assert [r.promoted for r in results] == [True, True, True]
            training_db.rename(trained)
    mine = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copyfile(trained, mine)
    return f"sqlite:///{mine}"


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` (one worker, no job runner) on a private port and store."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
    ]
    log = (tmp_path / "mlflow.log").open("wb")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{uri}/health").status_code == 200, timeout=60)
    yield uri
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=20)
    log.close()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's in-process S3 with the predictions bucket; fake credentials only."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="predictions")
        yield client


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's S3 server on a private port (the end-to-end stand-in for MinIO)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # Every in-process moto shares one state: start each test with an empty S3.
    httpx.post(f"{endpoint}/moto-api/reset").raise_for_status()
    yield endpoint
    server.stop()


S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the S3 server at endpoint, with the test credentials."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def bucket_rows(
    client: Any, bucket: str = "predictions", prefix: str = "predictions/"
) -> list[dict[str, str]]:
    """Every row of every prediction object in the bucket (CSV or Parquet), as dicts of text."""
    from streamfn.sink.formats.base import format_of

    rows: list[dict[str, str]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            fmt = format_of(item["Key"])
            assert fmt is not None, f"an object of no known format: {item['Key']}"
            header, cells = fmt.table(
                client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            )
            rows.extend(dict(zip(header, row, strict=True)) for row in cells)
    return rows


def rows_in(client: Any) -> Counter[tuple[str, str]]:
    """(message_id, record_index) of every row in the bucket, counted."""
    return Counter((r["message_id"], r["record_index"]) for r in bucket_rows(client))


@pytest.fixture
def infer_settings(make_settings: Callable[..., Settings], sqlite_registry: str) -> Settings:
    """Settings for an infer process: the test's Redis, the trained SQLite registry."""
    return make_settings(MLFLOW_TRACKING_URI=sqlite_registry)
