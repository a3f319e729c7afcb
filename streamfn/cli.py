"""The `streamfn` console script: one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from streamfn import logs, stack
from streamfn.config import ConfigError, Settings, get_settings, load_settings
from streamfn.constants import API_NAMES, REGISTERED_MODELS

console = Console(stderr=True)


class CommandError(RuntimeError):
    """A command cannot go on; the message says what to do."""


def check_mlflow(uri: str) -> None:
    """Fail fast, with the fix, when an MLflow server URI does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        raise CommandError(
            f"MLflow is not reachable at MLFLOW_TRACKING_URI={uri} ({error}). Start a server "
            "(`streamfn up` does) or point MLFLOW_TRACKING_URI at a SQLite store, "
            "e.g. sqlite:///mlflow.db"
        ) from None


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train, log and register the models; print a summary table."""
    from streamfn import training  # heavy imports (mlflow, sklearn) only for this command

    uri = args.tracking_uri or settings.MLFLOW_TRACKING_URI
    alias = args.alias or settings.MODEL_ALIAS
    check_mlflow(uri)
    console.print(f"training {', '.join(args.model)} against {uri} …")
    results = training.train(uri, alias, tuple(args.model), args.data)
    table = Table(title=f"streamfn train → {uri}")
    for column in ("model", "registered", "version", "macro F1", "precision", "recall", alias, "s"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.api_name,
            r.registered_name,
            r.version,
            f"{r.metrics[training.SCORE]:.3f}",
            f"{r.metrics['precision_macro']:.3f}",
            f"{r.metrics['recall_macro']:.3f}",
            f"v{r.champion_version}" + (" (moved)" if r.promoted else " (kept)"),
            f"{r.seconds:.1f}",
        )
    Console().print(table)
    return 0


def cmd_dataset(args: argparse.Namespace, settings: Settings) -> int:
    """Regenerate the synthetic dataset (byte-for-byte for a given seed)."""
    from streamfn import dataset

    path = dataset.write_csv(args.out, seed=args.seed)
    console.print(f"wrote {path}")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the ingest API with uvicorn."""
    import uvicorn

    uvicorn.run(
        "streamfn.api:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )
    return 0


POLL_OPTIONS = ("BATCH_SIZE", "BATCH_WINDOW_MS", "CLAIM_IDLE_MS", "MAX_DELIVERIES")


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    """One poller: read batches, invoke infer, acknowledge; SIGTERM/SIGINT finish the batch."""
    from prometheus_client import start_http_server
    from redis import Redis

    from streamfn import invoke
    from streamfn.poller import Poller

    overrides = {
        n: getattr(args, n.lower()) for n in POLL_OPTIONS if getattr(args, n.lower()) is not None
    }
    if overrides:
        settings = load_settings(**overrides)
    client = Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    poller = Poller(settings, client, invoke.from_settings(settings), consumer=args.consumer)
    if args.metrics_port:
        start_http_server(args.metrics_port)

    def on_signal(signum: int, _frame: object) -> None:
        if poller.stopping.is_set():
            raise SystemExit(128 + signum)  # second signal: leave now
        poller.stopping.set()  # first: finish and acknowledge the batch in flight

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    poller.run(burst=args.burst)
    return 0


def registry_has_models(uri: str) -> bool:
    """Whether every model is registered in the MLflow registry at uri."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    try:
        for name in REGISTERED_MODELS.values():
            client.get_registered_model(name)
    except MlflowException:
        return False
    return True


EMBEDDED_S3 = "http://127.0.0.1:9000"
POLLER_METRICS_PORT = 9101


def local_services(
    home: Path, s3_endpoint: str | None
) -> tuple[list[stack.Service], dict[str, str]]:
    """The embedded stack's services, in start order, and the environment they share."""
    redis_url, mlflow_uri, ingest_url = (
        "redis://127.0.0.1:6379/0",
        "http://127.0.0.1:5001",
        "http://127.0.0.1:8800",
    )
    env = {
        "REDIS_URL": redis_url,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "INGEST_URL": ingest_url,
        "AWS_ENDPOINT_URL_S3": s3_endpoint or EMBEDDED_S3,
    }
    if s3_endpoint is None:
        # The embedded S3 (moto's server) accepts any credentials; give boto3 some.
        env |= {"AWS_ACCESS_KEY_ID": "streamfn", "AWS_SECRET_ACCESS_KEY": "streamfn"}
    mlflow_home = home / "mlflow"
    for folder in (home / "redis", mlflow_home):
        folder.mkdir(parents=True, exist_ok=True)
    redis_server = [
        "redis-server", "--port", "6379", "--bind", "127.0.0.1", "--dir", str(home / "redis"),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    ]  # fmt: skip
    mlflow_server = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", "5001",
        "--workers", "1", "--backend-store-uri", f"sqlite:///{mlflow_home / 'mlflow.db'}",
        "--artifacts-destination", str(mlflow_home / "artifacts"),
    ]  # fmt: skip
    services = [
        stack.Service("redis", redis_server, stack.redis_ok(redis_url), 6379),
        stack.Service(
            "mlflow",
            mlflow_server,
            stack.http_ok(f"{mlflow_uri}/health"),
            5001,
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # ~0.5 GB instead of ~3 GB
        ),
        stack.Service(
            "ingest",
            stack.cli("ingest", "--port", "8800"),
            stack.http_ok(f"{ingest_url}/health"),
            8800,
            env=env,
        ),
        stack.Service(
            "poller",
            stack.cli("poll", "--metrics-port", str(POLLER_METRICS_PORT)),
            stack.http_ok(f"http://127.0.0.1:{POLLER_METRICS_PORT}/metrics"),
            POLLER_METRICS_PORT,
            env=env,
        ),
    ]
    if s3_endpoint is None:
        s3_server = [sys.executable, "-c", "from moto.server import main; main()", "-p", "9000"]
        services.insert(2, stack.Service("s3", s3_server, stack.http_ok(f"{EMBEDDED_S3}/"), 9000))
    return services, env


def prepare_stack(env: dict[str, str]) -> None:
    """Create the bucket, and train the models if the registry lacks them."""
    from streamfn.sink import S3Sink, SinkUnavailableError

    try:
        S3Sink.from_settings(load_settings(**env)).ensure_bucket()
    except SinkUnavailableError as error:
        raise CommandError(f"S3 at {env['AWS_ENDPOINT_URL_S3']} is not usable: {error}") from None
    if not registry_has_models(env["MLFLOW_TRACKING_URI"]):
        console.print("the registry lacks the models: training them (about a minute) …")
        trained = subprocess.run(stack.cli("train"), env={**os.environ, **env}, check=False)
        if trained.returncode != 0:
            raise CommandError("training failed; see the output above")


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Run the local stack until Ctrl-C or SIGTERM, then stop it in reverse order."""
    if shutil.which("redis-server") is None:
        raise CommandError("redis-server is not on PATH: apt-get install -y redis-server")
    home = args.home.resolve()
    services, env = local_services(home, settings.AWS_ENDPOINT_URL_S3)
    local = stack.Stack(home)
    local.check_ports(services)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        for service in services:
            if service.name == "ingest":
                prepare_stack(env)
            console.print(f"starting {service.name} …")
            local.start(service)
            if stopping.is_set():
                return 0
        console.print(
            f"[green]up[/]: ingest {env['INGEST_URL']}/docs · MLflow {env['MLFLOW_TRACKING_URI']}"
            f" · Redis {env['REDIS_URL']} · S3 {env['AWS_ENDPOINT_URL_S3']}"
            f"{' (embedded, in memory)' if settings.AWS_ENDPOINT_URL_S3 is None else ''}"
            f" · logs in {local.logs}. Ctrl-C stops everything."
        )
        while not stopping.wait(1.0):
            dead = [s.name for s, p in local.running if p.poll() is not None]
            if dead:
                raise CommandError(f"{', '.join(dead)} stopped unexpectedly; logs in {local.logs}")
        return 0
    except stack.StackError as error:
        raise CommandError(str(error)) from None
    finally:
        console.print("stopping …")
        local.stop()
        console.print("stopped.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from streamfn import dataset

    parser = argparse.ArgumentParser(prog="streamfn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train, log and register the three models")
    train.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI")
    train.add_argument("--alias", help="default: MODEL_ALIAS")
    train.add_argument(
        "--model", action="append", choices=API_NAMES, help="repeatable; default: all three"
    )
    train.add_argument("--data", type=Path, help="dataset CSV; default: the committed one")
    train.set_defaults(handler=cmd_train)

    data = commands.add_parser("dataset", help="regenerate the synthetic dataset CSV")
    data.add_argument("--seed", type=int, default=42)
    data.add_argument("--out", type=Path, default=dataset.DEFAULT_PATH)
    data.set_defaults(handler=cmd_dataset)

    ingest = commands.add_parser("ingest", help="serve the ingest API under uvicorn")
    ingest.add_argument("--host", default="0.0.0.0")
    ingest.add_argument("--port", type=int, default=8800)
    ingest.set_defaults(handler=cmd_ingest)

    poll = commands.add_parser("poll", help="one poller: stream → infer → S3")
    for name in POLL_OPTIONS:
        poll.add_argument(
            "--" + name.lower().replace("_", "-"),
            type=int,
            dest=name.lower(),
            help=f"default: {name}",
        )
    poll.add_argument("--consumer", help="consumer name; default: host-pid-random")
    poll.add_argument("--burst", action="store_true", help="drain the stream, then exit")
    poll.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    poll.set_defaults(handler=cmd_poll)

    up = commands.add_parser("up", help="run the local stack (Redis, MLflow, ingest)")
    up.add_argument("--home", type=Path, default=Path(".streamfn"), help="data and logs")
    up.set_defaults(handler=cmd_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "train" and not args.model:
        args.model = list(API_NAMES)
    logs.configure(f"streamfn-{args.command}")
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, get_settings())
    except (ConfigError, CommandError) as error:
        console.print(f"[bold red]error:[/] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
