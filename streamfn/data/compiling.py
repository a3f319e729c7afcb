"""`streamfn compile` (and `streamfn train`, for the versions it registers): a version's compiled
form, checked, logged beside its model as `model.onnx` and `parity.json`.

The parity sample is the version's held-out split when training has it at hand, else the rows
of `--data FILE.csv`, else records drawn from the version's reference profile; at least
SAMPLE_RECORDS either way (profile draws fill up a smaller one), and the edge records of
`streamfn.models.compiled.sample` on top. A version that cannot be converted still gets its
`parity.json`, saying why: the runtime choice reads that and serves it natively.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from streamfn.data.artifacts import log_beside_version, log_files
from streamfn.data.samplers import ProfileSampler, RowSampler, SamplerError
from streamfn.data.synth import EmployeeIds
from streamfn.models import schemas
from streamfn.models.compiled.build import Compiled, compile_model
from streamfn.models.loading import estimator_of, schema_in
from streamfn.models.registry import ClientRegistry
from streamfn.models.runtimes.choice import ONNX_FILE, PARITY_FILE
from streamfn.models.schemas import ModelSchema

SAMPLE_RECORDS = 2000
SEED = 25


class CompileError(ValueError):
    """A version `streamfn compile` cannot work on; the message says why."""


@dataclass(frozen=True)
class Outcome:
    """What `streamfn compile` did for one version."""

    schema: ModelSchema
    compiled: Compiled
    source: str  # where the parity sample came from


def files_of(compiled: Compiled) -> dict[str, Any]:
    """The artifacts to log: the report always, the graph when there is one."""
    files: dict[str, Any] = {PARITY_FILE: compiled.report}
    if compiled.graph is not None:
        files[ONNX_FILE] = compiled.graph
    return files


def sample_records(
    schema: ModelSchema, profile: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]] = (),
    count: int = SAMPLE_RECORDS,
) -> tuple[list[dict[str, Any]], str]:  # fmt: skip
    """At least `count` records: `rows` first, profile draws for the rest; and their source."""
    records = [dict(r) for r in rows]
    source = f"{len(records):,} rows given" if records else ""
    if len(records) < count:
        if profile is None:
            raise CompileError(
                f"{schema.registered_name} v{schema.version} has no {schemas.REFERENCE_FILE} "
                f"and {len(records):,} rows were given: give --data FILE.csv with at least "
                f"{count:,} rows like the training data, or `streamfn profile` it first"
            )
        rng = random.Random(SEED)
        drawn = ProfileSampler(profile, schema, EmployeeIds(rng), rng).records(count - len(records))
        records += drawn
        source = ", ".join(
            filter(None, [source, f"{len(drawn):,} drawn from its {schemas.REFERENCE_FILE}"])
        )
    return records, source


def compile_fitted(
    estimator: Any, schema: ModelSchema, profile: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]] = (),
) -> Outcome:  # fmt: skip
    """The compiled form of a fitted model, checked on `rows` (and profile draws)."""
    records, source = sample_records(schema, profile, rows)
    compiled = compile_model(estimator, schema, records)
    compiled.report["sample"]["source"] = source
    return Outcome(schema, compiled, source)


def compile_registered(
    uri: str, api_name: str, name: str, version: str, data: Path | None = None
) -> Outcome:
    """Compile one registered version and log its files beside it."""
    registry = ClientRegistry(uri)
    client = registry.client
    with tempfile.TemporaryDirectory(prefix="streamfn-compile-") as directory:
        source = client.get_model_version_download_uri(name, version)
        path = Path(mlflow.artifacts.download_artifacts(source, dst_path=directory,
                                                        tracking_uri=uri))  # fmt: skip
        schema = schema_in(path, api_name, name, version)
        model = mlflow.pyfunc.load_model(str(path))
        profile = registry.json_file(name, version, schemas.REFERENCE_FILE)
    estimator, schema = estimator_of(model, schema)
    if estimator is None:
        flavours = ", ".join(sorted(model.metadata.flavors))
        served = " (an ONNX model is served as it is)" if "onnx" in model.metadata.flavors else ""
        raise CompileError(f"{name} v{version} is not a scikit-learn model ({flavours}){served}")
    rows: list[dict[str, Any]] = []
    if data is not None:
        try:
            rows = RowSampler(data, schema, EmployeeIds(random.Random(SEED)),
                              random.Random(SEED)).rows  # fmt: skip
        except SamplerError as error:
            raise CompileError(str(error)) from None
    outcome = compile_fitted(estimator, schema, profile, rows)
    log_beside_version(client, name, version, files_of(outcome.compiled))
    return outcome


def version_of(uri: str, name: str, version: str | None, alias: str) -> str:
    """The version asked for, else the alias's (else the latest)."""
    if version is not None:
        return version
    return ClientRegistry(uri).alias_version(name, alias).version


def log_compiled(client: MlflowClient, model_id: str, compiled: Compiled) -> None:
    """Log a compiled form beside a logged model (before it is registered: a poller that loads
    the new version finds its graph there)."""
    log_files(client, model_id, files_of(compiled))
