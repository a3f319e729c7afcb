"""`streamfn up`, `buckets`, `results` and `bench`: the pipeline on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from streamfn.cli.common import (
    CommandError,
    Commands,
    Exit,
    configuration,
    console,
    old_spelling,
    outage,
    storage_error,
    usage,
)
from streamfn.core import plugins
from streamfn.core.environment import ENV_FILE
from streamfn.core.settings import Settings, parse_models
from streamfn.monitor import WINDOWS_SHOWN

RESULT_COLUMNS = ("message_id", "record_index", "model", "model_version", "prediction_label",
                  "predicted_at", "imputed", "Employee ID")  # fmt: skip
TRACKING_HELP = (
    "an MLflow tracking URI that has the models (default: none: a SQLite store trained under "
    "--out, about a minute, kept for the next run)"
)
# Said when a service does not answer: where the variables that name it come from.
WHERE_FROM = (
    f"Run this where `streamfn up` runs (its {ENV_FILE} is read), or set the variables that "
    "point at your stack"
)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The whole pipeline on this machine until Ctrl-C or SIGTERM."""
    from streamfn.local import up

    if args.pollers < 1:
        raise usage("--pollers must be 1 or more")
    if args.rate is not None and args.rate <= 0:
        raise usage("--rate must be positive (or use --no-producer)")
    if args.partitions is not None and not 1 <= args.partitions <= 1024:
        raise usage("--partitions must be 1 to 1024")
    models = args.models or settings.MODELS
    try:
        parse_models(models)
    except ValueError as error:
        raise usage(f"--models: {error}") from None
    options = up.Options(
        home=args.home,
        pollers=args.pollers,
        rate=None if args.no_producer else args.rate,
        s3_endpoint=settings.s3_endpoint,
        models=models,
        backend=args.backend or settings.STREAM_BACKEND,
        partitions=args.partitions or settings.STREAM_PARTITIONS,
        cluster=args.cluster or settings.REDIS_CLUSTER,
    )
    try:
        return up.run(options, console)
    except up.MissingError as error:
        raise configuration(str(error)) from None
    except up.UnreachableError as error:
        raise outage(str(error)) from None
    except up.UpError as error:  # a child that failed or stopped: its log says why
        raise CommandError(str(error), Exit.FAILED) from None


def cmd_buckets(args: argparse.Namespace, settings: Settings) -> int:
    """Create PREDICTIONS_BUCKET and any other buckets named, unless they exist."""
    from streamfn.sink.bucket import Bucket, BucketUnavailableError, make_s3_client

    client = make_s3_client(settings)
    for name in dict.fromkeys([settings.PREDICTIONS_BUCKET, *args.names]):
        try:
            Bucket(client, name).ensure()
        except BucketUnavailableError as error:
            raise storage_error(error) from None
        console.print(f"bucket {name} is ready at {settings.s3_endpoint or 'AWS'}")
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    """List the prediction objects per model and date (CSV or Parquet), show the newest rows,
    optionally download."""
    from streamfn.sink import catalog
    from streamfn.sink.bucket import Bucket, BucketUnavailableError

    bucket = Bucket.from_settings(settings)
    where = f"s3://{bucket.name} at {settings.s3_endpoint or 'AWS'}"
    try:
        objects = catalog.list_objects(bucket, args.model, args.date)
        if not objects:
            console.print(f"no prediction objects in {where} yet")
            return 0
        out = Console()
        out.print(partitions_table(catalog.partitions(objects), where))
        if args.rows > 0:
            out.print(rows_table(catalog.newest_rows(bucket, objects, args.rows)))
        if args.out is not None:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("downloading", total=len(objects))
                written = catalog.download(
                    bucket, objects, args.out, lambda _: progress.advance(task)
                )
            console.print(f"downloaded {len(written)} objects under {args.out}")
    except BucketUnavailableError as error:
        raise storage_error(error, f". Is the pipeline running? {WHERE_FROM}") from None
    return 0


def partitions_table(partitions: list, where: str) -> Table:
    """Objects, bytes and last write per model and date."""
    table = Table(title=f"prediction objects in {where}")
    for column in ("model", "date", "objects", "bytes", "last written (UTC)"):
        table.add_column(column, justify="right" if column in ("objects", "bytes") else "left")
    for p in partitions:
        table.add_row(p.model, p.date, f"{p.objects:,}", f"{p.size:,}", f"{p.newest:%H:%M:%S}")
    return table


def rows_table(rows: list[dict[str, str]]) -> Table:
    """The newest rows, with the columns that identify them and their prediction."""
    table = Table(title=f"newest {len(rows)} rows")
    for column in RESULT_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(row.get(column, "") for column in RESULT_COLUMNS))
    return table


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    """Drift and live accuracy per window, from the ingest's GET /monitoring."""
    import httpx

    from streamfn.api.auth import client_headers
    from streamfn.local import monitor_view

    params: dict[str, object] = {"windows": args.windows}
    if args.model:
        params["model"] = args.model
    try:
        answer = httpx.get(f"{settings.INGEST_URL}/monitoring", params=params, timeout=10,
                           headers=client_headers(settings.INGEST_API_KEY))  # fmt: skip
    except httpx.HTTPError as error:
        raise outage(
            f"the ingest at INGEST_URL={settings.INGEST_URL} does not answer ({error}). "
            + WHERE_FROM
        ) from None
    if answer.status_code != 200:
        said = f"GET /monitoring answered {answer.status_code}: {answer.text[:300]}"
        # 503: Redis behind the ingest is down; any other refusal is about what was asked.
        raise outage(said) if answer.status_code == 503 else configuration(said)
    found = answer.json()
    out = Console()
    if not found["windows"]:
        console.print("no window counted yet: send records (streamfn produce), then look again")
    for table in monitor_view.tables(found, settings.DRIFT_PSI):
        out.print(table)
    for line in canary_lines(settings, args.model):
        out.print(line, highlight=False)
    return 0


def canary_lines(settings: Settings, model: str | None) -> list[str]:
    """Each model's canary (of `model` only, when given), from GET /models; a line saying why
    not when it does not answer: the windows above are what `monitor` is for."""
    import httpx

    from streamfn.local import monitor_view

    try:
        answer = httpx.get(f"{settings.INGEST_URL}/models", timeout=10)
        answer.raise_for_status()
        entries = answer.json()["models"]
    except (httpx.HTTPError, ValueError, KeyError) as error:
        return [f"canaries unknown: GET /models did not answer ({error})"]
    return monitor_view.canary_lines([e for e in entries if model is None or e["model"] == model])


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """The benchmark: writes bench.md and bench.png under --out."""
    from streamfn.bench.costs import COSTS
    from streamfn.bench.load import LoadError
    from streamfn.bench.run import Bench, Options

    if args.partitions is not None and args.partitions < 2:
        raise usage("--partitions must be 2 or more (it is measured against 1)")
    options = Options(args.out, args.tracking_uri, args.quick, args.pollers, args.seconds,
                      args.mlserver_venv, args.partitions, args.costs)  # fmt: skip
    try:
        Bench(options, console, COSTS).run()
    except LoadError as error:  # wrk is missing, or cannot run here
        raise configuration(str(error)) from None
    return 0


def cmd_bench_ceilings(args: argparse.Namespace, settings: Settings) -> int:
    """Each part's ceiling alone on this machine: a table (or JSON) on stdout."""
    import sys

    from streamfn.bench import ceilings
    from streamfn.bench.ceilings import results
    from streamfn.bench.load import LoadError
    from streamfn.local.stack import StackError

    parts = tuple(dict.fromkeys(args.parts.split(","))) if args.parts else ceilings.PARTS
    unknown = set(parts) - set(ceilings.PARTS)
    if unknown:
        raise usage(f"--parts: unknown {', '.join(sorted(unknown))} "
                           f"(choose from {','.join(ceilings.PARTS)})")  # fmt: skip
    if args.seconds <= 0:
        raise usage("--seconds must be positive")
    try:
        found = ceilings.measure(args.out, args.seconds, parts, args.tracking_uri, console.print)
    except LoadError as error:  # wrk is missing, or cannot run here
        raise configuration(str(error)) from None
    except StackError as error:  # a server of its own failed: its log says why
        raise CommandError(str(error), Exit.FAILED) from None
    (args.out / "ceilings.json").write_bytes(results.as_json(found))
    (args.out / "ceilings.md").write_text(results.markdown(found) + "\n")
    console.print(f"written: {args.out / 'ceilings.json'} and {args.out / 'ceilings.md'}")
    if args.json:
        sys.stdout.buffer.write(results.as_json(found) + b"\n")
        return 0
    table = Table(title=f"ceilings on this machine ({args.seconds:g} s per measurement)")
    for column in results.COLUMNS:
        left = column in ("part", "shape", "notes")
        table.add_column(column, justify="left" if left else "right")
    for row in results.table_rows(found):
        table.add_row(*row)
    Console(width=max(Console().width, 160)).print(table)  # whole rows in a log or a pipe
    return 0


def register(commands: Commands) -> None:
    """Add `up`, `bench`, `bench-ceilings`, `monitor`, `buckets` and `results`."""
    up = commands.add_parser("up", help="the whole pipeline on this machine, with a live status")
    up.add_argument(
        "--home", type=Path, default=Path(".streamfn"), metavar="DIR",
        help=f"the stack's data, logs and variables (DIR/env; commands read ./{ENV_FILE})",
    )  # fmt: skip
    up.add_argument("--pollers", type=int, default=1, help="poller processes")
    up.add_argument("--rate", type=float, default=10.0, help="records/s from the producer")
    up.add_argument("--no-producer", action="store_true", help="start no producer")
    up.add_argument(
        "--backend", choices=tuple(plugins.BACKENDS),
        help="the stream: Redis, or Kinesis or SQS on moto's server (default: STREAM_BACKEND)",
    )  # fmt: skip
    up.add_argument("--models", help="MODELS for every process (default: MODELS, else the seed's)")
    up.add_argument(
        "--partitions", type=int, metavar="P",
        help="how many stream partitions (default: STREAM_PARTITIONS, else 1)",
    )  # fmt: skip
    up.add_argument(
        "--cluster", action="store_true",
        help="a Redis Cluster of 3 masters and 3 replicas on ports 7000-7005 (REDIS_CLUSTER)",
    )  # fmt: skip
    up.set_defaults(handler=cmd_up)

    bench = commands.add_parser("bench", help="the pipeline against its floor and its peers")
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: LightGBM only, 3 s runs (~3 min); figures not comparable, no ratios",
    )
    bench.add_argument(
        "--out", type=Path, default=Path(".streamfn/bench"), metavar="DIR",
        help="the folder of the report (bench.md, bench.png), the servers' files and logs",
    )  # fmt: skip
    tracking = bench.add_argument("--tracking-uri", metavar="URI", help=TRACKING_HELP)
    old_spelling(bench, "--registry", tracking)
    bench.add_argument("--pollers", type=int, default=1, help="poller processes")
    bench.add_argument(
        "--partitions", type=int, metavar="P",
        help="how many stream partitions to measure against 1, on one redis-server, and only "
        "that (partitions.md; default: none, the whole bench)",
    )  # fmt: skip
    bench.add_argument(
        "--seconds", type=float, help="seconds per load run (default: 10, with --quick 3)"
    )
    bench.add_argument(
        "--costs",
        action="store_true",
        help="only what each feature costs (monitoring, Parquet, estimates, reason codes, a "
        "challenger in shadow, a 25%% canary): costs.md",
    )
    bench.add_argument(
        "--mlserver-venv", type=Path, default=Path(".venv-mlserver"), metavar="DIR",
        help="MLServer's own virtualenv, created on first use",
    )  # fmt: skip
    bench.set_defaults(handler=cmd_bench)

    ceilings = commands.add_parser(
        "bench-ceilings", help="each part's ceiling alone: XADD, XREADGROUP, ingest, poller, S3"
    )
    ceilings.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ceilings.add_argument(
        "--parts", help="comma-separated, of xadd,xreadgroup,ingest,poller,s3 (default: all)"
    )
    tracking = ceilings.add_argument("--tracking-uri", metavar="URI", help=TRACKING_HELP)
    old_spelling(ceilings, "--registry", tracking)
    ceilings.add_argument(
        "--out", type=Path, default=Path(".streamfn/ceilings"), metavar="DIR",
        help="the folder of ceilings.json and ceilings.md, the servers' files and logs",
    )  # fmt: skip
    ceilings.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    ceilings.set_defaults(handler=cmd_bench_ceilings)

    monitor = commands.add_parser("monitor", help="drift and live accuracy per window")
    monitor.add_argument("--model", help="one model (an API name; default: every model)")
    monitor.add_argument(
        "--windows", type=int, default=WINDOWS_SHOWN, help="windows to show, as GET /monitoring"
    )
    monitor.set_defaults(handler=cmd_monitor)

    buckets = commands.add_parser("buckets", help="create PREDICTIONS_BUCKET (and more) if missing")
    buckets.add_argument("names", nargs="*", help="more buckets to create")
    buckets.set_defaults(handler=cmd_buckets)

    results = commands.add_parser(
        "results", help="list the prediction objects and show the newest rows"
    )
    results.add_argument("--model", help="only this model's objects (an API name; default: all)")
    results.add_argument(
        "--date", help="only this day's objects (YYYY-MM-DD, with --model; default: every day)"
    )
    results.add_argument("--rows", type=int, default=10, help="newest rows to show")
    out = results.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="download the objects into this folder (default: none)",
    )
    old_spelling(results, "--download", out)
    results.set_defaults(handler=cmd_results)
