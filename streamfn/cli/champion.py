"""`streamfn backtest`, `promote` and `rollback`: a challenger's way to champion."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from streamfn.cli.common import CommandError, Commands, check_mlflow, console
from streamfn.core.settings import Settings

if TYPE_CHECKING:
    from streamfn.challenger.backtest import Outcome
    from streamfn.challenger.gate import Gate
    from streamfn.core.connections import SyncClient

_HOURS = re.compile(r"(\d+(?:\.\d+)?)([hd])")


def hours(text: str) -> float:
    """`24h` or `2d` as hours."""
    found = _HOURS.fullmatch(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r}: give hours or days, e.g. 24h or 2d")
    return float(found[1]) * (24 if found[2] == "d" else 1)


def registered_name(settings: Settings, model: str) -> str:
    """The registered name of an API name of MODELS; CommandError naming the valid ones."""
    name = settings.models.get(model)
    if name is None:
        raise CommandError(f"unknown model {model!r}: MODELS has {', '.join(settings.models)}")
    return name


def open_gate(settings: Settings, model: str) -> Gate:
    """The champion and challenger aliases of a model of MODELS, in the registry."""
    from mlflow import MlflowClient

    from streamfn.challenger.gate import Gate

    check_mlflow(settings.MLFLOW_TRACKING_URI)
    name = registered_name(settings, model)
    client = MlflowClient(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_TRACKING_URI)
    return Gate(client, name, settings.MODEL_ALIAS, settings.CHALLENGER_ALIAS)


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    """Move the champion alias to the challenger when the live evidence passes the gate."""
    from redis.exceptions import RedisError

    from streamfn.challenger import gate
    from streamfn.core import connections

    doors = open_gate(settings, args.model)
    try:
        champion, challenger = doors.versions()
    except gate.GateError as error:
        raise CommandError(str(error)) from None
    redis = connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER)
    try:
        found = gate.evidence(redis, settings.keys, args.model, champion, challenger)
    except RedisError as error:
        raise CommandError(
            f"the live evidence is in Redis at REDIS_URL={settings.REDIS_URL}, which did not "
            f"answer ({error}): nothing was decided"
        ) from None
    decision = gate.decide(found, args.min_labelled, args.min_delta, args.gate)
    doors.record(decision, args.dry_run)
    agreement = "—" if found.agreement is None else f"{found.agreement:.1%}"
    console.print(f"{args.model}: {found.compared:,} rows scored by both, agreement {agreement}")
    prefix = "dry run, nothing changed: would be " if args.dry_run else ""
    console.print(prefix + decision.reason)
    if decision.promote and not args.dry_run:
        console.print(
            f"{doors.name}@{settings.MODEL_ALIAS} → v{challenger}; pollers serve it within their "
            f"MODEL_REFRESH_S. Undo: streamfn rollback --model {args.model}"
        )
    return 0 if decision.promote else 1


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Move the champion alias back to the version the last promotion replaced."""
    from streamfn.challenger import gate

    doors = open_gate(settings, args.model)
    try:
        current, previous = doors.rollback(args.dry_run)
    except gate.GateError as error:
        raise CommandError(str(error)) from None
    verb = "would move" if args.dry_run else "moved"
    console.print(
        f"{doors.name}@{settings.MODEL_ALIAS} {verb} from v{current} back to v{previous}"
        + ("" if args.dry_run else "; pollers follow within their MODEL_REFRESH_S")
    )
    return 0


def candidate_version(settings: Settings, name: str, args: argparse.Namespace) -> str:
    """The version to backtest: --version, or the one --alias names."""
    from streamfn.models.registry import RegistryError, open_registry

    if args.version is not None:
        return str(args.version)
    try:
        version = open_registry(settings.MLFLOW_TRACKING_URI).alias_target(name, args.alias)
    except RegistryError as error:
        raise CommandError(str(error)) from None
    if version is None:
        raise CommandError(f"{name} has no @{args.alias}: give --version or another --alias")
    return version


def labels_store(settings: Settings) -> SyncClient | None:
    """Redis, where the labels are; None (agreement only) when it does not answer."""
    from redis.exceptions import RedisError

    from streamfn.core import connections

    redis = connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER)
    try:
        redis.ping()
    except RedisError:
        console.print("[yellow]Redis unreachable: no labels, agreement only[/]")
        return None
    return redis


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    """Score the bucket's rows again with a candidate version; print how it compares."""
    from mlflow import MlflowClient

    from streamfn.challenger import backtest
    from streamfn.models.cache import load_version
    from streamfn.sink.bucket import Bucket, BucketUnavailableError

    uri = settings.MLFLOW_TRACKING_URI
    check_mlflow(uri)
    name = registered_name(settings, args.model)
    version = candidate_version(settings, name, args)
    now = dt.datetime.now(dt.UTC)
    since_ms = None if args.date else int((now.timestamp() - args.since * 3600) * 1000)
    bucket = Bucket.from_settings(settings)
    try:
        objects = backtest.object_keys(
            bucket, args.model, backtest.days(args.since, args.date, now)
        )
        if not objects:
            raise CommandError(f"no prediction objects of {args.model} then: nothing to score")
        try:
            candidate = load_version(
                MlflowClient(uri, uri),
                uri,
                args.model,
                name,
                version,
                settings.PREDICT_RUNTIME,
                settings.model_flavours,
            )  # as the infer function serves it
        except Exception as error:  # whatever the registry or the load says
            raise CommandError(f"{name} v{version} cannot be loaded: {error}") from None
        started = time.perf_counter()
        with progress_bar(len(objects)) as show:
            outcome = backtest.backtest(
                candidate, bucket, objects, labels_store(settings), settings.keys, since_ms, show
            )
    except BucketUnavailableError as error:
        raise CommandError(str(error)) from None
    print_outcome(args.model, version, outcome, time.perf_counter() - started)
    return 0


@contextmanager
def progress_bar(objects: int) -> Iterator[Callable[[int, int], None]]:
    """A bar of the objects read, with the rows scored so far."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("objects"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rows]}"))  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("objects", total=objects, rows="")

        def show(done: int, rows: int) -> None:
            progress.update(task, completed=done, rows=f"{rows:,} rows")

        yield show


def print_outcome(model: str, version: str, outcome: Outcome, seconds: float) -> None:
    """The backtest's summary: agreement, class shifts, and scores where labels were joined."""
    written = ", ".join(f"v{v} {n:,}" for v, n in sorted(outcome.versions.items()))
    agreement = "—" if outcome.agreement is None else f"{outcome.agreement:.2%}"
    out = Console()
    out.print(
        f"{model} v{version} on {outcome.rows:,} rows of {outcome.objects:,} objects (written by "
        f"{written}) in {seconds:.1f} s ({outcome.rows / seconds:,.0f} rows/s): agreement "
        f"{agreement}"
    )
    table = Table(title="predicted classes", title_justify="left")
    for column in ("class", "as written", f"v{version}", "shift"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label in sorted(set(outcome.written) | set(outcome.candidate)):
        before, after = outcome.written[label], outcome.candidate[label]
        table.add_row(label, f"{before:,}", f"{after:,}", f"{after - before:+,}")
    out.print(table)
    labelled, accuracy, f1, their_accuracy, their_f1 = outcome.scores()
    if labelled:
        out.print(
            f"{labelled:,} labelled rows: as written accuracy {accuracy:.3f}, macro F1 {f1:.3f}; "
            f"v{version} accuracy {their_accuracy:.3f}, macro F1 {their_f1:.3f}"
        )
    else:
        out.print("no labelled rows (labels are kept RESULT_TTL_S): agreement only")


def register(commands: Commands) -> None:
    """Add `backtest`, `promote` and `rollback`."""
    back = commands.add_parser(
        "backtest", help="score the bucket's rows again with a candidate version"
    )
    back.add_argument("--model", required=True, help="an API name of MODELS")
    which = back.add_mutually_exclusive_group()
    which.add_argument("--version", help="a version number of the registered model")
    which.add_argument("--alias", default="challenger", help="default: challenger")
    back.add_argument("--since", type=hours, default=24.0, metavar="24h", help="default: 24h")
    back.add_argument(
        "--date", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="one day, whole"
    )
    back.set_defaults(handler=cmd_backtest)

    promote = commands.add_parser(
        "promote", help="make the challenger champion if its live labelled scores pass the gate"
    )
    promote.add_argument("--model", required=True, help="an API name of MODELS")
    promote.add_argument(
        "--min-labelled", type=int, default=200,
        help="labelled live rows both versions scored, at least (default 200)",
    )  # fmt: skip
    promote.add_argument(
        "--min-delta", type=float, default=0.0,
        help="the challenger's macro F1 may be this much below the champion's (default 0)",
    )  # fmt: skip
    promote.add_argument(
        "--gate", choices=("labels", "estimated"), default="labels",
        help="labels: macro F1 on labelled shadow rows; estimated: macro F1 estimated from "
        "each version's calibrated probabilities on the shadow rows, where no labels come "
        "back (default labels)",
    )  # fmt: skip
    promote.add_argument("--dry-run", action="store_true", help="decide and say, change nothing")
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser(
        "rollback", help="make the champion the version the last promotion replaced"
    )
    rollback.add_argument("--model", required=True, help="an API name of MODELS")
    rollback.add_argument("--dry-run", action="store_true", help="say, change nothing")
    rollback.set_defaults(handler=cmd_rollback)
