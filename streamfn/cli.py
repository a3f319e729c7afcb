"""The `streamfn` console script: one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from streamfn import logs, producer
from streamfn.config import ConfigError, Settings, get_settings, load_settings
from streamfn.constants import API_NAMES

console = Console(stderr=True, soft_wrap=True)  # messages stay whole, for copy and paste
log = logging.getLogger(__name__)
STATUS_EVERY_S = 10.0
# A producer that reaches less than this share of its rate says so, with what bounds it.
RATE_SHORTFALL = 0.9


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
    models = tuple(args.model)
    if args.if_missing:
        models = training.missing_models(uri, models)
        if not models:
            console.print(f"every model is registered at {uri}: nothing to train")
            return 0
    console.print(f"training {', '.join(models)} against {uri} (about a minute) …")
    results = training.train(uri, alias, models, args.data)
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
    # Signals first: building the invoker loads the models, and a stop may come meanwhile.
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            raise SystemExit(128 + signum)  # second signal: leave now
        stopping.set()  # first: finish and acknowledge the batch in flight

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    client = Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    invoker = invoke.from_settings(settings)
    poller = Poller(settings, client, invoker, consumer=args.consumer, stopping=stopping)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    poller.run(burst=args.burst)
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    """Send synthetic records to INGEST_URL; a progress bar with --count; a summary at the end."""
    if args.count is None and args.rate is None:
        raise CommandError("give --count N (records in all), --rate R (records/s), or both")
    try:
        plan = producer.Plan(
            count=args.count,
            rate=args.rate,
            models=tuple(args.model or API_NAMES),
            batch=args.batch,
            seed=args.seed,
            concurrency=args.concurrency,
            give_up_s=args.give_up_s,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    tally = asyncio.run(run_producer(settings, plan))
    print_tally(plan, tally)
    return 0 if tally.rejected == tally.undelivered == 0 else 1


async def run_producer(settings: Settings, plan: producer.Plan) -> producer.Tally:
    """Run the producer with a progress bar (--count) or a status line every 10 s (--rate)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    loop = asyncio.get_running_loop()
    async with producer.open_producer(settings, plan) as sender:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, sender.stop)
        console.print(
            f"producing to {settings.INGEST_URL}: "
            + (f"{plan.count} records" if plan.count else "until stopped")
            + (f" at {plan.rate:g} records/s" if plan.rate else "")
            + f", {plan.batch} per request, models {', '.join(plan.models)}"
        )
        if plan.count is None:
            reporter = asyncio.create_task(report_every(sender.tally, STATUS_EVERY_S))
            try:
                return await sender.run()
            finally:
                reporter.cancel()
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("records", total=plan.count, detail="")

            def show(tally: producer.Tally) -> None:
                done = tally.accepted + tally.rejected + tally.undelivered
                detail = f"{tally.rate:,.0f}/s accepted · {tally.rejected} rejected"
                progress.update(task, completed=done, detail=detail)

            return await sender.run(show)


async def report_every(tally: producer.Tally, seconds: float) -> None:
    """Log the producer's counts every `seconds` (the --rate mode has no end to show)."""
    while True:
        await asyncio.sleep(seconds)
        log.info("producing", extra=tally.as_dict())


def print_tally(plan: producer.Plan, tally: producer.Tally) -> None:
    """The producer's summary: every record sent, and what became of it."""
    table = Table(title="streamfn produce")
    for column in ("sent", "accepted", "rejected", "undelivered", "retries", "throttled", "s",
                   "records/s"):  # fmt: skip
        table.add_column(column, justify="right")
    table.add_row(
        *(f"{n:,}" for n in (tally.sent, tally.accepted, tally.rejected, tally.undelivered,
                             tally.retries, tally.throttled)),
        f"{tally.seconds:.1f}", f"{tally.rate:,.0f}",
    )  # fmt: skip
    Console().print(table)
    for error in tally.errors:
        console.print(f"[red]error:[/] {error}")
    if plan.rate and tally.rate < RATE_SHORTFALL * plan.rate and tally.seconds > 2:
        console.print(
            f"[yellow]reached {tally.rate:,.0f} of the {plan.rate:,.0f} records/s asked, "
            f"{tally.behind_s:.1f} s behind:[/] "
            f"each request waited for the ingest's answer with {plan.concurrency} in flight at "
            "most; raise --concurrency or --batch, or the ingest (or this machine) is the bound"
        )
    log.info("producer finished", extra=tally.as_dict())


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The whole pipeline on this machine until Ctrl-C or SIGTERM."""
    from streamfn import local

    if args.pollers < 1:
        raise CommandError("--pollers must be 1 or more")
    if args.rate is not None and args.rate <= 0:
        raise CommandError("--rate must be positive (or use --no-producer)")
    options = local.Options(
        home=args.home,
        pollers=args.pollers,
        rate=None if args.no_producer else args.rate,
        s3_endpoint=settings.AWS_ENDPOINT_URL_S3,
    )
    try:
        return local.run(options, console)
    except local.UpError as error:
        raise CommandError(str(error)) from None


def cmd_buckets(args: argparse.Namespace, settings: Settings) -> int:
    """Create PREDICTIONS_BUCKET and any other buckets named, unless they exist."""
    from streamfn.sink import S3Sink, SinkUnavailableError, make_s3_client

    client = make_s3_client(settings)
    for name in dict.fromkeys([settings.PREDICTIONS_BUCKET, *args.names]):
        try:
            S3Sink(client, name).ensure_bucket()
        except SinkUnavailableError as error:
            raise CommandError(str(error)) from None
        console.print(f"bucket {name} is ready at {settings.AWS_ENDPOINT_URL_S3 or 'AWS'}")
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    """List the CSV objects per model and date, show the newest rows, optionally download."""
    from streamfn import catalog
    from streamfn.sink import S3Sink, SinkUnavailableError

    sink = S3Sink.from_settings(settings)
    where = f"s3://{sink.bucket} at {settings.AWS_ENDPOINT_URL_S3 or 'AWS'}"
    try:
        objects = catalog.list_objects(sink, args.model, args.date)
        if not objects:
            console.print(f"no prediction objects in {where} yet")
            return 0
        out = Console()
        table = Table(title=f"prediction objects in {where}")
        for column in ("model", "date", "objects", "bytes", "last written (UTC)"):
            table.add_column(column, justify="right" if column in ("objects", "bytes") else "left")
        for p in catalog.partitions(objects):
            table.add_row(p.model, p.date, f"{p.objects:,}", f"{p.size:,}", f"{p.newest:%H:%M:%S}")
        out.print(table)
        if args.rows > 0:
            out.print(rows_table(catalog.newest_rows(sink, objects, args.rows)))
        if args.download is not None:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("downloading", total=len(objects))
                written = catalog.download(
                    sink, objects, args.download, lambda _: progress.advance(task)
                )
            console.print(f"downloaded {len(written)} objects under {args.download}")
    except SinkUnavailableError as error:
        raise CommandError(
            f"{error}. Is the pipeline running, and does this shell have its variables? "
            "(after `streamfn up`: set -a; . .streamfn/env; set +a)"
        ) from None
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """The benchmark of SPEC section 9: writes bench.md and bench.png under --out."""
    from streamfn.bench.load import LoadError
    from streamfn.bench.run import Bench, Options

    options = Options(args.out, args.registry, args.quick, args.pollers, args.seconds)
    try:
        Bench(options, console).run()
    except LoadError as error:
        raise CommandError(str(error)) from None
    return 0


RESULT_COLUMNS = ("message_id", "record_index", "model", "model_version", "prediction_label",
                  "predicted_at", "imputed", "Employee ID")  # fmt: skip


def rows_table(rows: list[dict[str, str]]) -> Table:
    """The newest rows, with the columns that identify them and their prediction."""
    table = Table(title=f"newest {len(rows)} rows")
    for column in RESULT_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(row.get(column, "") for column in RESULT_COLUMNS))
    return table


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
    train.add_argument(
        "--if-missing", action="store_true", help="train only the models not registered yet"
    )
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

    produce = commands.add_parser("produce", help="send synthetic records to INGEST_URL")
    produce.add_argument("--count", type=int, help="records in all (a progress bar shows them)")
    produce.add_argument("--rate", type=float, help="records per second (steady)")
    produce.add_argument(
        "--model",
        action="append",
        choices=API_NAMES,
        help="repeatable; default: all, in turn",
    )
    produce.add_argument("--batch", type=int, default=100, help="records per request")
    produce.add_argument("--seed", type=int, help="for the same records every run")
    produce.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    produce.add_argument(
        "--give-up-s",
        type=float,
        default=60.0,
        help="how long a request keeps retrying an unreachable ingest",
    )
    produce.set_defaults(handler=cmd_produce)

    up = commands.add_parser("up", help="the whole pipeline on this machine, with a live status")
    up.add_argument("--home", type=Path, default=Path(".streamfn"), help="data and logs")
    up.add_argument("--pollers", type=int, default=1, help="poller processes (default 1)")
    up.add_argument(
        "--rate", type=float, default=10.0, help="records/s from the producer (default 10)"
    )
    up.add_argument("--no-producer", action="store_true", help="start no producer")
    up.set_defaults(handler=cmd_up)

    bench = commands.add_parser("bench", help="the pipeline against its floor and its peers")
    bench.add_argument("--quick", action="store_true", help="LightGBM only, short runs (~3 min)")
    bench.add_argument("--out", type=Path, default=Path(".streamfn/bench"), help="report folder")
    bench.add_argument("--registry", help="a tracking URI with the models (default: train one)")
    bench.add_argument("--pollers", type=int, default=1, help="poller processes (default 1)")
    bench.add_argument("--seconds", type=float, help="seconds per load run (10; quick: 3)")
    bench.set_defaults(handler=cmd_bench)

    buckets = commands.add_parser("buckets", help="create PREDICTIONS_BUCKET (and more) if missing")
    buckets.add_argument("names", nargs="*", help="more buckets to create")
    buckets.set_defaults(handler=cmd_buckets)

    results = commands.add_parser("results", help="list the CSV objects and show the newest rows")
    results.add_argument("--model", choices=API_NAMES, help="only this model's objects")
    results.add_argument("--date", help="only this day's objects (YYYY-MM-DD; with --model)")
    results.add_argument("--rows", type=int, default=10, help="newest rows to show (default 10)")
    results.add_argument("--download", type=Path, metavar="DIR", help="copy the objects here")
    results.set_defaults(handler=cmd_results)
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
