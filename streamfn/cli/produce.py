"""`streamfn produce`: synthetic records to the ingest, at a count or a rate, with their labels
if asked; a summary of what became of every record."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamfn.cli.common import Commands, Exit, configuration, console, registry_error, usage
from streamfn.core.settings import Settings
from streamfn.data import producer
from streamfn.data.plan import Plan, Tally
from streamfn.data.samplers import SamplerError
from streamfn.models.registry import RegistryError
from streamfn.models.schemas import SchemaError

log = logging.getLogger(__name__)
STATUS_EVERY_S = 10.0
# A producer that reaches less than this share of its rate says so, with what bounds it.
RATE_SHORTFALL = 0.9


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    """Send synthetic records to INGEST_URL; a progress bar with --count; a summary at the end.
    With --http-port, serve the producer as a function instead (each POST is a plan)."""
    if args.http_port is not None:
        import uvicorn

        from streamfn.data.produce_http import create_app

        uvicorn.run(create_app(settings), host=args.host, port=args.http_port,
                    log_level="warning", access_log=False)  # fmt: skip
        return 0
    if args.count is None and args.rate is None:
        raise usage("give --count N (records in all), --rate R (records/s), or both")
    try:
        plan = Plan(
            count=args.count,
            rate=args.rate,
            models=tuple(args.model or ()),
            batch=args.batch,
            seed=args.seed,
            concurrency=args.concurrency,
            give_up_s=args.give_up_s,
            drift=args.drift or "",
            labels=args.labels,
            drift_labels=args.drift_labels,
            concept=args.concept or "",
        )
    except ValueError as error:
        raise usage(str(error)) from None
    try:
        plan.models_of(settings)
    except ValueError as error:
        raise configuration(str(error)) from None
    try:
        port = args.metrics_port or settings.METRICS_PORT
        tally = asyncio.run(run_producer(settings, plan, port, args.data))
    except RegistryError as error:
        raise registry_error(error) from None
    except (SamplerError, SchemaError) as error:
        raise configuration(str(error)) from None
    print_tally(plan, tally)
    return outcome(tally)


def outcome(tally: Tally) -> Exit:
    """Undelivered records mean the ingest did not answer (an outage); rejected ones, that the
    ingest refused them (the records or the key are wrong)."""
    if tally.undelivered:
        return Exit.OUTAGE
    return Exit.FAILED if tally.rejected else Exit.OK


def serve_health(port: int, tally: Tally) -> None:
    """/health (ok while records are being accepted) and /metrics on `port`."""
    from streamfn.core import health

    def healthy() -> tuple[bool, dict[str, Any]]:
        since = tally.last_accepted or tally.started
        return time.monotonic() - since < health.STALE_AFTER_S, tally.as_dict()

    health.serve(port, healthy)


async def run_producer(
    settings: Settings,
    plan: Plan,
    metrics_port: int | None = None,
    data: Path | None = None,
) -> Tally:
    """Run the producer with a progress bar (--count) or a status line every 10 s (--rate)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    loop = asyncio.get_running_loop()
    async with producer.open_producer(settings, plan, data) as sender:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, sender.stop)
        if metrics_port:
            serve_health(metrics_port, sender.tally)
        console.print(
            f"producing to {settings.INGEST_URL}: "
            + (f"{plan.count} records" if plan.count else "until stopped")
            + (f" at {plan.rate:g} records/s" if plan.rate else "")
            + f", {plan.batch} per request, models {', '.join(sender.models)}"
            + (f", drift {plan.drift}" if plan.drift else "")
            + (f", labels {plan.drift_labels} the drift" if plan.drift and plan.labels else "")
            + (f", concept shift {plan.concept}" if plan.concept else "")
            + (", with labels" if plan.labels else "")
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

            def show(tally: Tally) -> None:
                done = tally.accepted + tally.rejected + tally.undelivered
                detail = f"{tally.rate:,.0f}/s accepted · {tally.rejected} rejected"
                progress.update(task, completed=done, detail=detail)

            return await sender.run(show)


async def report_every(tally: Tally, seconds: float) -> None:
    """Log the producer's counts every `seconds` (the --rate mode has no end to show)."""
    while True:
        await asyncio.sleep(seconds)
        log.info("producing", extra=tally.as_dict())


def print_tally(plan: Plan, tally: Tally) -> None:
    """The producer's summary: every record sent, and what became of it."""
    table = Table(title="streamfn produce")
    columns = ["sent", "accepted", "rejected", "undelivered", "retries", "throttled"]
    counts = [tally.sent, tally.accepted, tally.rejected, tally.undelivered, tally.retries,
              tally.throttled]  # fmt: skip
    if plan.labels:
        # Each accepted record ends in one of these: its label joined, its label not joined
        # in time, or no label to send (the dataset's way: some records have no Burn Rate).
        columns += ["labels joined", "labels not joined", "no label"]
        counts += [tally.labelled, tally.unlabelled, tally.no_label]
    for column in (*columns, "s", "records/s"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{n:,}" for n in counts), f"{tally.seconds:.1f}", f"{tally.rate:,.0f}")
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


def register(commands: Commands) -> None:
    """Add `produce`."""
    produce = commands.add_parser("produce", help="send synthetic records to INGEST_URL")
    produce.add_argument(
        "--count", type=int,
        help="records in all, a progress bar shows them (default: none, until stopped; give "
        "--count, --rate or both)",
    )  # fmt: skip
    produce.add_argument(
        "--http-port", type=int, metavar="PORT",
        help="serve the producer as a function on this port instead: each POST / is a plan "
        "(the Lambda function's event), answered with its tally (OpenFaaS, Knative; "
        "default: none)",
    )  # fmt: skip
    produce.add_argument("--host", default="127.0.0.1", help="with --http-port: the address")
    produce.add_argument(
        "--rate", type=float, help="records per second, steady (default: none, as fast as sent)"
    )
    produce.add_argument(
        "--model", action="append",
        help="an API name of MODELS, repeatable (default: every model, in turn)",
    )  # fmt: skip
    produce.add_argument("--batch", type=int, default=100, help="records per request")
    produce.add_argument(
        "--seed", type=int, help="for the same records every run (default: none, new ones)"
    )
    produce.add_argument(
        "--data", type=Path, metavar="FILE.csv",
        help="resample this file's rows instead (default: drawn like the dataset, or from the "
        "model's reference profile)",
    )  # fmt: skip
    produce.add_argument("--concurrency", type=int, default=4, help="requests in flight at most")
    produce.add_argument(
        "--give-up-s",
        type=float,
        default=60.0,
        help="seconds a request keeps retrying an unreachable ingest",
    )
    produce.add_argument(
        "--drift",
        metavar='"INPUT=+x,OTHER=*y"',
        help="shift (+x) or scale (*x) inputs of every record, clipped to their range "
        "(default: none)",
    )
    produce.add_argument(
        "--labels", action="store_true", help="also POST /feedback with each record's label"
    )
    produce.add_argument(
        "--drift-labels", choices=("drawn", "follow"), default="drawn",
        help="the labels of drifted records: as drawn for the unmoved record (a changed relation "
        "of label to inputs), or following the moved inputs by the dataset's own relation",
    )  # fmt: skip
    produce.add_argument(
        "--concept", metavar='"INPUT=+x"',
        help="labels as if these inputs had moved, the inputs as drawn: a concept shift the "
        "inputs do not show (the seed's models; default: none)",
    )  # fmt: skip
    produce.add_argument(
        "--metrics-port", type=int,
        help="serve /health and Prometheus /metrics on this port (default: METRICS_PORT)",
    )  # fmt: skip
    produce.set_defaults(handler=cmd_produce)
