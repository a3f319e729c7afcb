"""The services a local pipeline is made of, as `streamfn up` and the benchmark start them."""

from __future__ import annotations

import sys
from pathlib import Path

from streamfn.local.stack import Service, cli, http_ok, redis_ok


def redis(port: int, data: Path) -> Service:
    """redis-server on 127.0.0.1 with AOF on (`appendfsync everysec`), its files under `data`."""
    data.mkdir(parents=True, exist_ok=True)
    command = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    ]  # fmt: skip
    return Service("redis", command, redis_ok(f"redis://127.0.0.1:{port}/0"), (port,))


def mlflow(port: int, home: Path) -> Service:
    """An MLflow server: SQLite and local artifacts under `home`, one worker, no job runner."""
    home.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(home / "artifacts"),
    ]  # fmt: skip
    # Without the job runner the server takes about 0.5 GB instead of 3 GB.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    ready = http_ok(f"http://127.0.0.1:{port}/health")
    return Service("mlflow", command, ready, (port,), env=env, start_timeout_s=90)


def moto_server(name: str, port: int) -> Service:
    """moto's server, in memory: the embedded stand-in for S3 (MinIO), Kinesis and SQS."""
    command = [sys.executable, "-c", "from moto.server import main; main()", "-p", str(port)]
    return Service(name, command, http_ok(f"http://127.0.0.1:{port}/"), (port,))


def moto_s3(port: int) -> Service:
    """moto's S3 server, in memory: the embedded stand-in for MinIO."""
    return moto_server("s3", port)


def ingest(port: int, env: dict[str, str], app: str | None = None) -> Service:
    """The ingest API (or another ASGI app's factory, for comparison) under one uvicorn
    worker."""
    if app is None:
        command = cli("ingest", "--host", "127.0.0.1", "--port", str(port))
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return Service("ingest", command, http_ok(f"http://127.0.0.1:{port}/health"), (port,), env)


def poller(name: str, consumer: str, port: int, env: dict[str, str]) -> Service:
    """`streamfn poll` as `consumer`, /health and /metrics on `port`; ready once it has polled,
    so its models are loaded by then."""
    command = cli("poll", "--metrics-port", str(port), "--consumer", consumer)
    return Service(name, command, http_ok(f"http://127.0.0.1:{port}/health"), (port,), env)
