"""`streamfn dataset`, `streamfn train`, `streamfn compile` and `streamfn profile`: the data the
models learn from, and the forms they are served in."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from streamfn.cli.common import (
    Commands,
    Exit,
    check_mlflow,
    configuration,
    console,
    registry_error,
    usage,
)
from streamfn.core.settings import SEED_MODELS, Settings
from streamfn.data import DATASET_PATH
from streamfn.models import schemas
from streamfn.models.registry import RegistryError
from streamfn.models.runtimes.choice import AUTO, ONNX_FILE, PARITY_FILE, choose, timings
from streamfn.models.schemas import SchemaError

if TYPE_CHECKING:
    from streamfn.data.compiling import Outcome


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train, log and register the models; print a summary table."""
    uri = args.tracking_uri or settings.MLFLOW_TRACKING_URI
    alias = args.alias or settings.MODEL_ALIAS
    check_mlflow(uri)  # before the imports below, which take seconds
    from streamfn.data import training  # heavy imports (mlflow, sklearn) only for this command

    models = tuple(args.model or training.TRAINABLE)
    try:
        params = training.parse_params(args.params or [])
    except ValueError as error:
        raise usage(str(error)) from None
    if params and len(models) != 1:
        raise usage("--params are one model's hyper-parameters: give one --model")
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
        raise usage(f"training refused {params}: {error}") from None
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
    except RegistryError as error:
        raise registry_error(error) from None
    except (compiling.CompileError, SchemaError, MlflowException, OSError) as error:
        raise configuration(str(error)) from None  # MLflow answered (checked above): no such one
    print_parity(name, version, outcome, settings.PREDICT_RUNTIME)
    return Exit.OK if outcome.compiled.passed else Exit.FAILED


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
    except RegistryError as error:
        raise registry_error(error) from None
    except (profiling.ProfileError, SchemaError, OSError) as error:
        raise configuration(str(error)) from None
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


def register(commands: Commands) -> None:
    """Add `train`, `compile`, `profile` and `dataset`."""
    train = commands.add_parser("train", help="train, log and register the three models")
    train.add_argument(
        "--tracking-uri", help="the MLflow to register in (default: MLFLOW_TRACKING_URI)"
    )
    train.add_argument(
        "--alias",
        help="the alias a new version competes for (default: MODEL_ALIAS); CHALLENGER_ALIAS "
        "registers it as the challenger, scored in shadow, without competing for champion",
    )
    train.add_argument(
        "--params",
        nargs="+",
        metavar="KEY=VALUE",
        help="hyper-parameters of the classifier (with one --model), e.g. n_estimators=200 "
        "(default: the recipe's)",
    )
    train.add_argument(
        "--model",
        action="append",
        choices=SEED_MODELS,
        help="a model to train, repeatable (default: the seed's three, the models train has a "
        "recipe for)",
    )
    train.add_argument(
        "--data", type=Path, metavar="FILE.csv", help="dataset CSV (default: the committed one)"
    )
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
    compile_.add_argument(
        "--version", help="the version to compile (default: the one MODEL_ALIAS points to)"
    )
    compile_.add_argument(
        "--data",
        type=Path,
        metavar="FILE.csv",
        help="rows to check parity on (default: drawn from the version's reference profile)",
    )
    compile_.add_argument(
        "--tracking-uri", metavar="URI", help="the MLflow (default: MLFLOW_TRACKING_URI)"
    )
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
        "was not trained on) for estimated performance (default: none)",
    )  # fmt: skip
    profile.add_argument(
        "--tracking-uri", metavar="URI", help="the MLflow (default: MLFLOW_TRACKING_URI)"
    )
    profile.set_defaults(handler=cmd_profile)

    data = commands.add_parser("dataset", help="regenerate the synthetic dataset CSV")
    data.add_argument("--seed", type=int, default=42, help="the same seed, the same bytes")
    data.add_argument(
        "--out", type=Path, default=DATASET_PATH, metavar="FILE.csv", help="the CSV file to write"
    )
    data.set_defaults(handler=cmd_dataset)
