"""`streamfn dataset`, `streamfn train`, `streamfn compile`, `streamfn profile` and `streamfn
produce`: the data the models see, and the forms they are served in."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from streamfn.cli.common import CommandError, Commands, check_mlflow, console
from streamfn.core.settings import SEED_MODELS, Settings
from streamfn.data import DATASET_PATH, producer
from streamfn.data.plan import Plan, Tally
from streamfn.data.samplers import SamplerError
from streamfn.models import schemas
from streamfn.models.registry import RegistryError
from streamfn.models.runtimes.choice import AUTO, ONNX_FILE, PARITY_FILE, choose, timings
from streamfn.models.schemas import SchemaError

if TYPE_CHECKING:
    from streamfn.data.compiling import Outcome

log = logging.getLogger(__name__)
STATUS_EVERY_S = 10.0
# A producer that reaches less than this share of its rate says so, with what bounds it.
RATE_SHORTFALL = 0.9


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train, log and register the models; print a summary table."""
    from streamfn.data import training  # heavy imports (mlflow, sklearn) only for this command

    uri = args.tracking_uri or settings.MLFLOW_TRACKING_URI
    alias = args.alias or settings.MODEL_ALIAS
    check_mlflow(uri)
    models = tuple(args.model or training.TRAINABLE)
    try:
        params = training.parse_params(args.params or [])
    except ValueError as error:
        raise CommandError(str(error)) from None
    if params and len(models) != 1:
        raise CommandError("--params are one model's hyper-parameters: give one --model")
    # A challenger does not compete: it is registered as such, and proves itself in shadow.
    compete = alias != settings.CHALLENGER_ALIAS
    if args.if_missing:
        models = training.missing_models(uri, models, alias)
        if not models:
            console.print(f"every model is registered at {uri}: nothing to train")
            return 0
    console.print(f"training {', '.join(models)} against {uri} (about a minute) …")
    try:
        results = training.train(uri, alias, models, args.data, params, compete)
    except (TypeError, ValueError) as error:  # a hyper-parameter the classifier refuses
        raise CommandError(f"training refused {params}: {error}") from None
    table = Table(title=f"streamfn train → {uri}")
    columns = ("model", "registered", "version", "macro F1", "precision", "recall", alias,
               "runtime (auto)", "s")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for r in results:
        table.add_row(
            r.api_name,
            r.registered_name,
            r.version,
            f"{r.metrics[training.SCORE]:.3f}",
            f"{r.metrics['precision_macro']:.3f}",
            f"{r.metrics['recall_macro']:.3f}",
            f"v{r.champion_version}"
            + (" (set)" if not compete else " (moved)" if r.promoted else " (kept)"),
            choose(AUTO, r.parity or None).runtime,
            f"{r.seconds:.1f}",
        )
    Console().print(table)
    for r in results:
        console.print(f"{r.api_name} v{r.version}: {choose(AUTO, r.parity or None).reason}")
    return 0


def cmd_compile(args: argparse.Namespace, settings: Settings) -> int:
    """Compile a registered version to ONNX, check it against the model, log model.onnx and
    parity.json beside it; print the parity figures and the runtime each setting would pick."""
    from mlflow.exceptions import MlflowException

    from streamfn.data import compiling

    uri = args.tracking_uri or settings.MLFLOW_TRACKING_URI
    check_mlflow(uri)
    api_name = args.model if args.model in settings.models else args.model.lower()
    name = settings.models.get(args.model, args.model)
    try:
        version = compiling.version_of(uri, name, args.version, settings.MODEL_ALIAS)
        console.print(f"compiling {name} v{version} and checking it (a minute or so) …")
        outcome = compiling.compile_registered(uri, api_name, name, version, args.data)
    except (compiling.CompileError, RegistryError, SchemaError, MlflowException, OSError) as error:
        raise CommandError(str(error)) from None
    print_parity(name, version, outcome, settings.PREDICT_RUNTIME)
    return 0 if outcome.compiled.passed else 1


def print_parity(name: str, version: str, outcome: Outcome, setting: str) -> None:
    """The parity report in two tables, and what PREDICT_RUNTIME makes of it."""
    report = outcome.compiled.report
    logged = f"{PARITY_FILE} and {ONNX_FILE}" if outcome.compiled.graph else PARITY_FILE
    table = Table(title=f"{name} v{version}: logged {logged}")
    for column in ("sample", "converted", "classes identical", "max difference", "compared",
                   "passed"):  # fmt: skip
        table.add_column(column)
    same = report.get("classes_identical")
    table.add_row(
        f"{report['sample']['records']:,} records ({outcome.source}, plus edge records)",
        "yes" if report["converted"] else f"no: {report.get('error')}",
        "—" if same is None else f"{same:,} of {report.get('rows', 0):,}",
        f"{report['max_abs_diff']:.1e}" if "max_abs_diff" in report else "—",
        report.get("compared", "—"),
        "[green]yes[/]" if report.get("passed") else "[red]no[/]",
    )
    Console().print(table)
    found = timings(report)
    if found:
        speed = Table(title="records → predictions, ms per call (best of several, one ONNX thread)")
        for column in ("records", "native", "ONNX Runtime", "speed-up"):
            speed.add_column(column, justify="right")
        for size, ms in found:
            speed.add_row(f"{int(size):,}", f"{ms['native']:.3f}", f"{ms['onnx']:.3f}",
                          f"{ms['native'] / ms['onnx']:.1f}x")  # fmt: skip
        Console().print(speed)
    choice = choose(setting, report)
    console.print(f"PREDICT_RUNTIME={setting}: {choice.runtime} ({choice.reason})")


def cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    """Log feature_constraints.json and reference_profile.json for a model, from a CSV."""
    from streamfn.data import profiling

    uri = args.tracking_uri or settings.MLFLOW_TRACKING_URI
    check_mlflow(uri)
    api_name = args.model if args.model in settings.models else args.model.lower()
    name = settings.models.get(args.model, args.model)
    console.print(f"profiling {name}@{settings.MODEL_ALIAS} from {args.data} …")
    try:
        done = profiling.profile_model(uri, settings.MODEL_ALIAS, api_name, name, args.data,
                                       settings.model_flavours, args.label)  # fmt: skip
    except (profiling.ProfileError, RegistryError, SchemaError, OSError) as error:
        raise CommandError(str(error)) from None
    table = Table(title=f"{name} v{done.schema.version}: profiled from {done.rows:,} rows")
    for column in ("input", "kind", "range or categories", "nulls"):
        table.add_column(column)
    for column in done.schema.columns:
        spread = done.profile["features"][column.name]
        if spread["kind"] == "number":
            shown = f"{spread['min']:g} … {spread['max']:g}" if spread["min"] is not None else "—"
        else:
            shown = ", ".join(spread["categories"][:6]) + (
                " …" if len(spread["categories"]) > 6 else ""
            )
        table.add_row(column.name, column.kind, shown, f"{spread['null_share']:.1%}")
    Console().print(table)
    predicted = done.profile["prediction"]
    if predicted["kind"] == "class":
        shares = ", ".join(
            f"{c} {s:.1%}" for c, s in zip(predicted["classes"], predicted["shares"], strict=True)
        )
        console.print(f"predicted classes: {shares}")
    if done.calibration is not None:
        errors = done.calibration["calibration_error"]
        console.print(f"calibrated ({done.calibration['method']} on {done.calibration['source']}"
                      f", {done.calibration['rows']:,} labelled rows; held-out calibration error "
                      + ", ".join(f"{m} {e:.4f}" for m, e in errors.items()) + ")")  # fmt: skip
    console.print(
        f"logged {schemas.CONSTRAINTS_FILE} and {schemas.REFERENCE_FILE} beside {name} "
        f'v{done.schema.version}; add it to MODELS (e.g. MODELS="$MODELS,{api_name}={name}")'
    )
    return 0


def cmd_dataset(args: argparse.Namespace, settings: Settings) -> int:
    """Regenerate the synthetic dataset (byte-for-byte for a given seed)."""
    from streamfn.data import dataset

    path = dataset.write_csv(args.out, seed=args.seed)
    console.print(f"wrote {path}")
    return 0


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
        raise CommandError("give --count N (records in all), --rate R (records/s), or both")
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
        raise CommandError(str(error)) from None
    try:
        plan.models_of(settings)
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        port = args.metrics_port or settings.METRICS_PORT
        tally = asyncio.run(run_producer(settings, plan, port, args.data))
    except (SamplerError, RegistryError, SchemaError) as error:
        raise CommandError(str(error)) from None
    print_tally(plan, tally)
    return 0 if tally.rejected == tally.undelivered == 0 else 1


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
        columns += ["labelled", "unlabelled"]
        counts += [tally.labelled, tally.unlabelled]
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
    """Add `train`, `dataset` and `produce`."""
    train = commands.add_parser("train", help="train, log and register the three models")
    train.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI")
    train.add_argument(
        "--alias",
        help="default: MODEL_ALIAS; CHALLENGER_ALIAS (challenger) registers the new version as "
        "the challenger, scored in shadow, without competing for champion",
    )
    train.add_argument(
        "--params",
        nargs="+",
        metavar="KEY=VALUE",
        help="hyper-parameters of the classifier (with one --model), e.g. n_estimators=200",
    )
    train.add_argument(
        "--model",
        action="append",
        choices=SEED_MODELS,
        help="repeatable; default: the seed's three (the models train has a recipe for)",
    )
    train.add_argument("--data", type=Path, help="dataset CSV; default: the committed one")
    train.add_argument(
        "--if-missing", action="store_true", help="train only the models not registered yet"
    )
    train.set_defaults(handler=cmd_train)

    compile_ = commands.add_parser(
        "compile",
        help="compile a version to ONNX, check it against the model, log model.onnx and "
        "parity.json",
    )
    compile_.add_argument(
        "--model", required=True, help="an API name of MODELS, or a registered name"
    )
    compile_.add_argument("--version", help="default: the version MODEL_ALIAS points to")
    compile_.add_argument(
        "--data",
        type=Path,
        metavar="FILE.csv",
        help="rows to check parity on; default: drawn from the version's reference profile",
    )
    compile_.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI")
    compile_.set_defaults(handler=cmd_compile)

    profile = commands.add_parser(
        "profile", help="log the constraints and reference profile of a model, from a CSV"
    )
    profile.add_argument(
        "--model", required=True, help="an API name of MODELS, or a registered name"
    )
    profile.add_argument(
        "--data", required=True, type=Path, metavar="FILE.csv", help="rows like the training data"
    )
    profile.add_argument(
        "--label", metavar="COLUMN",
        help="the CSV's column of true classes: calibrate the classifier on those rows (ones it "
        "was not trained on) for estimated performance; default: none",
    )  # fmt: skip
    profile.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI")
    profile.set_defaults(handler=cmd_profile)

    data = commands.add_parser("dataset", help="regenerate the synthetic dataset CSV")
    data.add_argument("--seed", type=int, default=42)
    data.add_argument("--out", type=Path, default=DATASET_PATH)
    data.set_defaults(handler=cmd_dataset)

    produce = commands.add_parser("produce", help="send synthetic records to INGEST_URL")
    produce.add_argument("--count", type=int, help="records in all (a progress bar shows them)")
    produce.add_argument(
        "--http-port", type=int, metavar="PORT",
        help="serve the producer as a function on this port instead: each POST / is a plan "
        "(the Lambda function's event), answered with its tally (OpenFaaS, Knative)",
    )  # fmt: skip
    produce.add_argument("--host", default="127.0.0.1", help="with --http-port: the address")
    produce.add_argument("--rate", type=float, help="records per second (steady)")
    produce.add_argument(
        "--model", action="append", help="an API name of MODELS; repeatable; default: all, in turn"
    )
    produce.add_argument("--batch", type=int, default=100, help="records per request")
    produce.add_argument("--seed", type=int, help="for the same records every run")
    produce.add_argument(
        "--data", type=Path, metavar="FILE.csv", help="resample this file's rows instead"
    )
    produce.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    produce.add_argument(
        "--give-up-s",
        type=float,
        default=60.0,
        help="how long a request keeps retrying an unreachable ingest",
    )
    produce.add_argument(
        "--drift",
        metavar='"INPUT=+x,OTHER=*y"',
        help="shift (+x) or scale (*x) inputs of every record, clipped to their range",
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
        "inputs do not show (the seed's models)",
    )  # fmt: skip
    produce.add_argument(
        "--metrics-port",
        type=int,
        help="serve /health and Prometheus /metrics on this port (default: METRICS_PORT)",
    )
    produce.set_defaults(handler=cmd_produce)
