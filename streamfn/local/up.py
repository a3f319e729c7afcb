"""`streamfn up`: the whole pipeline on this machine as child processes, with a live status.

Start order, each waiting for the previous to be healthy: redis-server, the MLflow server, the S3
endpoint (yours, a `minio` binary, or moto's embedded server), then the bucket and the models,
then ingest, the pollers and the producer. Stop order is the reverse, so the producer stops
first and every poller finishes the batch it holds while Redis and S3 are still up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.live import Live

from streamfn.core import connections
from streamfn.core.settings import (
    INGEST_PORT,
    MLFLOW_PORT,
    REDIS_PORT,
    S3_PORT,
    Settings,
    load_settings,
)
from streamfn.local import cluster, services, stack, status
from streamfn.models.seed import is_seed_model
from streamfn.stream.base import LocalSetupError, backend

MINIO_CONSOLE_PORT = 9001
FIRST_POLLER_METRICS_PORT = 9101
AWS_PORT = 4566  # moto's server for Kinesis and SQS (LocalStack's port)
# `--cluster`: 3 masters and 3 replicas (bus ports 17000-17005).
CLUSTER_PORTS = [7000, 7001, 7002, 7003, 7004, 7005]
# MinIO's own defaults; the local stack is for this machine only (it binds 127.0.0.1).
MINIO_USER = MINIO_PASSWORD = "minioadmin"
# The embedded S3 (moto) accepts any credentials, but boto3 needs some to sign with.
EMBEDDED_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "streamfn", "AWS_SECRET_ACCESS_KEY": "streamfn"}
STATUS_EVERY_S = 1.0
PLAIN_STATUS_EVERY_S = 10.0  # a terminal that cannot redraw (a log file) gets a line this often
THROUGHPUT_WINDOW = 5  # readings the records/s figure is averaged over


class UpError(RuntimeError):
    """`streamfn up` cannot go on; the message says what to do."""


class MissingError(UpError):
    """What `up` needs on this machine is not there (redis-server, a free port): nothing started."""


class UnreachableError(UpError):
    """A service given from outside (the S3 of AWS_ENDPOINT_URL_S3) does not answer."""


@dataclass(frozen=True)
class Options:
    """The choices of `streamfn up`."""

    home: Path
    pollers: int = 1
    rate: float | None = 10.0  # records/s from the producer; None: no producer
    s3_endpoint: str | None = None  # AWS_ENDPOINT_URL_S3 of the caller: use it, start none
    models: str | None = None  # MODELS for every process (None: the environment's, or default)
    backend: str = "redis"  # STREAM_BACKEND: kinesis or sqs run on moto's server
    partitions: int = 1  # STREAM_PARTITIONS
    cluster: bool = False  # a local Redis Cluster instead of one redis-server (REDIS_CLUSTER)


@dataclass
class LocalStack:
    """The services of one `streamfn up`, in start order, and what they share."""

    services: list[stack.Service]
    env: dict[str, str]
    s3_kind: str
    links: dict[str, str]
    poller_metrics: list[str]


def s3_service(home: Path) -> tuple[stack.Service, dict[str, str], str, dict[str, str]]:
    """A `minio` binary if one is on PATH, else moto's server (in memory)."""
    endpoint = f"http://127.0.0.1:{S3_PORT}"
    minio = shutil.which("minio")
    if minio is not None:
        data = home / "minio"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            minio, "server", str(data), "--address", f"127.0.0.1:{S3_PORT}",
            "--console-address", f"127.0.0.1:{MINIO_CONSOLE_PORT}",
        ]  # fmt: skip
        service = stack.Service(
            "minio",
            command,
            stack.http_ok(f"{endpoint}/minio/health/live"),
            (S3_PORT, MINIO_CONSOLE_PORT),
            env={"MINIO_ROOT_USER": MINIO_USER, "MINIO_ROOT_PASSWORD": MINIO_PASSWORD},
        )
        credentials = {"AWS_ACCESS_KEY_ID": MINIO_USER, "AWS_SECRET_ACCESS_KEY": MINIO_PASSWORD}
        console_url = f"http://127.0.0.1:{MINIO_CONSOLE_PORT} ({MINIO_USER} / {MINIO_PASSWORD})"
        return service, credentials, f"MinIO, data in {data}", {"MinIO console": console_url}
    return (
        services.moto_s3(S3_PORT),
        EMBEDDED_CREDENTIALS,
        "embedded (moto), IN MEMORY: gone when up stops",
        {},
    )


def plan(options: Options) -> LocalStack:
    """The services of `streamfn up`, in start order, and the environment they share."""
    home = options.home
    mlflow_uri = f"http://127.0.0.1:{MLFLOW_PORT}"
    ingest_url = f"http://127.0.0.1:{INGEST_PORT}"
    env = {"REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0", "MLFLOW_TRACKING_URI": mlflow_uri,
           "INGEST_URL": ingest_url, "STREAM_BACKEND": options.backend,
           "STREAM_PARTITIONS": str(options.partitions),
           "REDIS_CLUSTER": str(options.cluster).lower()}  # fmt: skip
    if options.models:
        env["MODELS"] = options.models
    if options.cluster:
        env["REDIS_URL"] = f"redis://127.0.0.1:{CLUSTER_PORTS[0]}/0"
        running = [cluster.node(port, home / "redis-cluster") for port in CLUSTER_PORTS]
    else:
        running = [services.redis(REDIS_PORT, home / "redis")]
    running.append(services.mlflow(MLFLOW_PORT, home / "mlflow"))
    links = {"Console": f"{ingest_url}/ui", "API docs": f"{ingest_url}/docs", "MLflow": mlflow_uri}
    if options.s3_endpoint is None:
        service, credentials, s3_kind, extra_links = s3_service(home)
        running.append(service)
        env |= {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{S3_PORT}", **credentials}
        links |= extra_links
    else:
        env["AWS_ENDPOINT_URL_S3"] = options.s3_endpoint
        s3_kind = "yours (AWS_ENDPOINT_URL_S3)"
    endpoint = f"http://127.0.0.1:{AWS_PORT}"
    emulated = backend(options.backend).local_variables(endpoint)
    if emulated:
        # The stream on a moto server of its own (Kinesis, SQS), whatever serves S3.
        running.append(services.moto_server("aws", AWS_PORT))
        env |= emulated
        env.setdefault("AWS_ACCESS_KEY_ID", EMBEDDED_CREDENTIALS["AWS_ACCESS_KEY_ID"])
        env.setdefault("AWS_SECRET_ACCESS_KEY", EMBEDDED_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # for boto3 and the aws CLI in a shell
        links |= {options.backend.capitalize(): f"{endpoint} (moto, IN MEMORY)"}
    running.append(services.ingest(INGEST_PORT, env))
    ports = [FIRST_POLLER_METRICS_PORT + i for i in range(options.pollers)]
    running += [
        services.poller(f"poller-{i}", f"up-{i}", port, env) for i, port in enumerate(ports, 1)
    ]
    if options.rate is not None:
        batch = str(max(1, min(100, int(options.rate))))  # about one request a second
        producer = stack.cli("produce", "--rate", f"{options.rate:g}", "--batch", batch)
        running.append(stack.Service("producer", producer, stack.always_ok, env=env))
    links |= {"S3": f"{env['AWS_ENDPOINT_URL_S3']}, bucket from PREDICTIONS_BUCKET"}
    metrics = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    return LocalStack(running, env, s3_kind, links, metrics)


def prepare(env: dict[str, str], log_dir: Path, stopping: threading.Event, say: Callable) -> None:
    """Create the bucket, and train the models the registry lacks."""
    from streamfn.sink.bucket import Bucket, BucketUnavailableError

    settings = load_settings(**env)
    try:
        Bucket.from_settings(settings).ensure()
    except BucketUnavailableError as error:
        raise UnreachableError(
            f"S3 at {env['AWS_ENDPOINT_URL_S3']} is not usable: {error}"
        ) from None
    try:
        backend(settings.STREAM_BACKEND).create_local(settings)
    except LocalSetupError as error:
        raise UpError(str(error)) from None
    seed = [m for m, name in settings.models.items() if is_seed_model(m, name)]
    if not seed:
        return  # models of your own: nothing streamfn knows how to train
    log_path = log_dir / "train.log"
    say(f"training the models the registry lacks, if any (log in {log_path}) …")
    with log_path.open("ab") as log:
        training = subprocess.Popen(
            stack.cli("train", "--if-missing", *(a for m in seed for a in ("--model", m))),
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    while training.poll() is None:
        if stopping.wait(0.5):
            training.terminate()
            training.wait()
            return
    if training.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise UpError(f"training failed; last lines of {log_path}:\n{tail}")


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """The variables a client in another shell needs to reach this stack."""
    lines = [f"{name}={value}" for name, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")


def reaching(env_file: Path) -> str:
    """How a command in another shell finds this stack's variables."""
    if env_file.parent.name == ".streamfn":  # where every command looks (cli.environment)
        return f"streamfn commands run from {env_file.parent.parent} read {env_file}"
    return f"`set -a; . {env_file}; set +a` points streamfn commands at this stack"


def run(options: Options, console: Console) -> int:
    """Start everything, show the status until Ctrl-C or SIGTERM, then stop in reverse order."""
    if shutil.which("redis-server") is None:
        raise MissingError(
            "redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install -y "
            "redis-server; macOS: brew install redis) or run `make up`, which does."
        )
    home = options.home.resolve()
    local = plan(replace(options, home=home))
    children = stack.Stack(home)
    stopping = threading.Event()
    try:
        children.check_ports(local.services)
    except stack.StackError as error:
        raise MissingError(str(error)) from None
    # SIGHUP too: a closed terminal stops the stack rather than orphaning it.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.set())
    env_file = home / "env"
    # A file an earlier run left (killed before it could tidy) would feed its variables to this
    # run's children, which are streamfn commands; this run writes its own once it is up.
    env_file.unlink(missing_ok=True)
    try:
        for service in local.services:
            if service.name == "mlflow" and options.cluster:  # every node is up: join them
                console.print("joining the Redis Cluster (3 masters, 3 replicas) …")
                cluster.ensure(CLUSTER_PORTS)
            if service.name == "ingest":
                prepare(local.env, children.logs, stopping, console.print)
            if stopping.is_set():
                return 0
            console.print(f"starting {service.name} …")
            children.start(service)
        write_env_file(env_file, local.env)
        console.print(
            f"[green]up[/]: S3 {local.s3_kind}; logs in {children.logs}. In another shell, "
            f"{reaching(env_file)} (try `streamfn results`). Ctrl-C stops everything."
        )
        console.print(f"console: {local.links['Console']}", highlight=False)
        watch(local, children, stopping, console)
        return 0
    except stack.StackError as error:
        raise UpError(str(error)) from None
    finally:
        # Output may go to a pipe that is gone (`streamfn up 2>&1 | tee log`: Ctrl-C ends tee too),
        # and rich then ends the process (SystemExit): the children are stopped whatever it says.
        try:
            console.print("stopping …")
        finally:
            # A stopped stack's variables would point later commands at nothing.
            env_file.unlink(missing_ok=True)
            children.stop()
        console.print("stopped.")


def watch(
    local: LocalStack, children: stack.Stack, stopping: threading.Event, console: Console
) -> None:
    """Show the live status until a stop is requested; fail if a child dies."""
    settings: Settings = load_settings(**local.env)
    client = connections.probe_client(local.env["REDIS_URL"], settings.REDIS_CLUSTER)
    ingest_metrics = f"{local.env['INGEST_URL']}/metrics"
    links = {**local.links, "logs": str(children.logs)}
    history: deque[status.Snapshot] = deque(maxlen=THROUGHPUT_WINDOW)

    def reading() -> tuple[status.Snapshot, status.Snapshot | None]:
        dead = [p.name for p in children.running if not p.running]
        if dead:
            raise UpError(f"{', '.join(dead)} stopped unexpectedly; logs in {children.logs}")
        now = status.collect(client, settings, ingest_metrics, local.poller_metrics)
        before = history[0] if history else None
        history.append(now)
        return now, before

    if console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            while not stopping.wait(STATUS_EVERY_S):
                live.update(status.render(*reading(), links), refresh=True)
        return
    ticks = 0
    while not stopping.wait(STATUS_EVERY_S):
        now, before = reading()
        ticks += 1
        if ticks % int(PLAIN_STATUS_EVERY_S / STATUS_EVERY_S) == 0:
            console.print(status.line(now, before))
