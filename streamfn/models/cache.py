"""The registry side of inference: resolve `models:/NAME@ALIAS`, load once, keep a warm cache.

Fail-fast choice: MLflow's HTTP client retries 7 times with exponential backoff and a 120 s
timeout by default, so one call against a dead or hung server blocks for minutes. A cache built
on an http(s) URI therefore sets `MLFLOW_HTTP_REQUEST_MAX_RETRIES=1` and
`MLFLOW_HTTP_REQUEST_TIMEOUT=4` for this process (unless the operator set them), through
`mlflow.environment_variables`: a refused connection fails in milliseconds, a hung server in 8 s,
and the cache's own refresh interval is the retry policy (a cached version keeps serving). The
one retry (immediate: urllib3 does not back off before the first) is for a kept-alive connection
that a proxy or load balancer closed while idle, which fails the first request made on it.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import orjson
import pandas as pd
from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.pyfunc import PyFuncModel

from streamfn.core import metrics
from streamfn.models import calibration, explain, registry, schemas, trust
from streamfn.models.columns import Columns, column_arrays, size
from streamfn.models.runtimes.base import Outputs, Runtime
from streamfn.models.runtimes.choice import AUTO, Choice
from streamfn.models.runtimes.loading import runtime_of
from streamfn.models.runtimes.native import NativeRuntime
from streamfn.models.schemas import ModelSchema, SchemaError

log = logging.getLogger(__name__)

NOT_CHOSEN = Choice("native", "loaded without a runtime choice")
HTTP_MAX_RETRIES = 1
HTTP_TIMEOUT_S = 4


class ModelUnavailableError(RuntimeError):
    """No version of the model could be resolved or loaded (and none is cached)."""


class ModelRefusedError(ModelUnavailableError):
    """The version cannot be served as it is (no signature, inputs of another kind): retrying
    the messages will not help, so they fail alone."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded in memory, predicting whole batches."""

    schema: ModelSchema
    model: PyFuncModel = field(repr=False, compare=False)
    # The scikit-learn estimator behind a sklearn-flavoured model: the native runtime calls it
    # directly, it gives the classes and says whether there are probabilities, and it stays here
    # whatever runtime serves (explanations come from the native model).
    estimator: Any = field(default=None, repr=False, compare=False)
    # The version's reference profile (`reference_profile.json`), None when it has none.
    profile: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # What predicts, and why that one (streamfn.models.runtimes): native unless told otherwise.
    runtime: Runtime = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    choice: Choice = NOT_CHOSEN
    # The version's calibration (`calibration.json`, streamfn.models.calibration): a window's
    # performance is estimated from it; None when it has none.
    calibration: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.runtime is None:
            object.__setattr__(self, "runtime", NativeRuntime(self.schema, self.model,
                                                              self.estimator))  # fmt: skip

    @property
    def api_name(self) -> str:
        """The model's API name."""
        return self.schema.model

    @property
    def registered_name(self) -> str:
        """The model's name in the registry."""
        return self.schema.registered_name

    @property
    def version(self) -> str:
        """The version loaded."""
        return self.schema.version

    @property
    def runtime_name(self) -> str:
        """The runtime serving it: native or onnx (what its rows' objects say)."""
        return self.runtime.name

    @property
    def classes(self) -> list[Any]:
        """The classifier's classes, in the order of its probabilities ([] if unknown)."""
        found = getattr(self.estimator, "classes_", None)
        return [] if found is None else list(found)

    @property
    def has_probabilities(self) -> bool:
        """Whether the model gives class probabilities."""
        return self.schema.output == "class" and hasattr(self.estimator, "predict_proba")

    def columns(self, records: Sequence[Mapping[str, object]]) -> dict[str, np.ndarray]:
        """The records as the model's input columns (streamfn.models.columns)."""
        return columns_of(self.schema, records)

    def frame(self, records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
        """The records as the native model's input frame."""
        return frame_of(self.schema, records)

    def outputs(self, columns: Columns, probabilities: bool) -> tuple[list[Any], np.ndarray]:
        """One prediction per row (a class, or a regressor's number) and, when asked, the class
        probabilities (columns in `classes` order; empty when not asked), in one runtime call."""
        if size(columns) == 0:
            return [], np.empty((0, len(self.classes)))
        found: Outputs = self.runtime.run(columns, probabilities)
        values = found.values
        if self.schema.output == "number":
            predictions = values.astype(np.float64).tolist()
        else:
            predictions = values.tolist()  # numpy ints and strings become Python ones
        shares = found.probabilities if found.probabilities is not None else np.empty((0, 0))
        return predictions, shares

    def predict(self, columns: Columns) -> list[Any]:
        """One prediction per row of columns (or of a frame of them), in one call."""
        return self.outputs(columns, probabilities=False)[0]

    def probabilities(self, columns: Columns) -> np.ndarray:
        """Each row's probability per class (columns in `classes` order)."""
        return self.outputs(columns, probabilities=True)[1]

    @property
    def calibrates_probabilities(self) -> bool:
        """Whether its calibration reads the runtime's probabilities (else the estimator's own
        decision function, or there is none)."""
        return self.calibration is not None and self.calibration["source"] == "predict_proba"

    def calibrated(self, columns: Columns, probabilities: np.ndarray | None) -> np.ndarray:
        """Each row's calibrated probability per class (`classes` order): from the runtime's
        probabilities when given, else from the native estimator's scores."""
        if self.calibration is None:
            raise ValueError(f"{self.registered_name} v{self.version} has no calibration")
        frame = None if probabilities is not None else pd.DataFrame(columns)
        return calibration.calibrated(self.calibration, self.estimator, frame, probabilities)

    @cached_property
    def explainer(self) -> explain.Explainer | None:
        """Its exact attribution (from the native model, whatever runtime predicts), or None,
        said once in the log with the reason."""
        try:
            return explain.explainer_of(self.estimator, self.schema.names)
        except explain.NotExplainableError as error:
            log.warning("no reason codes for this version",
                        extra={"model": self.api_name, "version": self.version,
                               "error": str(error)})  # fmt: skip
            return None


def columns_of(
    schema: ModelSchema, records: Sequence[Mapping[str, object]]
) -> dict[str, np.ndarray]:
    """The schema's columns (in signature order) of canonical records; absent values missing."""
    return column_arrays([(c.name, c.kind) for c in schema.columns], records)


def frame_of(schema: ModelSchema, records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """The schema's columns (in signature order) of canonical records; absent values are NaN."""
    # Column by column: 1.7 times faster than a frame of rows converted afterwards
    # (benchmarks/bench_infer.py).
    return pd.DataFrame(columns_of(schema, records), columns=list(schema.names))


def json_in(path: Path, name: str) -> Any:
    """A JSON file of a downloaded version, None when it has none."""
    found = path / name
    return orjson.loads(found.read_bytes()) if found.exists() else None


def schema_in(path: Path, api_name: str, registered: str, version: str) -> ModelSchema:
    """The schema of a downloaded version, from its MLmodel and JSON files."""
    return schemas.build(
        api_name, registered, version, (path / schemas.MLMODEL_FILE).read_text(),
        json_in(path, schemas.CONSTRAINTS_FILE), json_in(path, schemas.LABELS_FILE),
    )  # fmt: skip


def estimator_of(model: PyFuncModel, schema: ModelSchema) -> tuple[Any, ModelSchema]:
    """The scikit-learn estimator of a sklearn-flavoured model (else None), and the schema with
    its output kind taken from the estimator itself."""
    if "sklearn" not in model.metadata.flavors:
        return None, schema
    from sklearn.base import is_classifier, is_regressor

    estimator = model.get_raw_model()
    if is_classifier(estimator):
        return estimator, replace(schema, output="class")
    if is_regressor(estimator):
        return estimator, replace(schema, output="number")
    return estimator, schema


def trusted(path: Path, flavours: frozenset[str], api_name: str, what: str) -> str:
    """The flavour of a downloaded version if MODEL_FLAVORS lists it; else a log line naming the
    variable, and UntrustedModelError."""
    try:
        return trust.check((path / schemas.MLMODEL_FILE).read_text(), flavours, what)
    except trust.UntrustedModelError as refused:
        log.error("model refused: MODEL_FLAVORS", extra={"model": api_name, "version": what,
                                                         "error": str(refused)})  # fmt: skip
        raise


def fail_fast_http() -> None:
    """Make MLflow's HTTP calls in this process fail within seconds instead of minutes."""
    for variable, value in (
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES, HTTP_MAX_RETRIES),
        (MLFLOW_HTTP_REQUEST_TIMEOUT, HTTP_TIMEOUT_S),
    ):
        if not variable.is_set():  # an operator's explicit choice wins
            variable.set(value)


def load_version(
    client: MlflowClient, uri: str, api_name: str, registered: str, version: str,
    runtime: str = AUTO, flavours: frozenset[str] = trust.DEFAULT,
) -> LoadedModel:  # fmt: skip
    """Download one version's artifacts, load them as a pyfunc model if its flavour is one of
    `flavours` (MODEL_FLAVORS: UntrustedModelError, before anything of it is loaded), and pick
    its runtime (PREDICT_RUNTIME `runtime`; the compiled graph is read while the download is
    at hand)."""
    started = time.perf_counter()
    # An explicit tracking URI, not the process-global one, and a private copy that is
    # deleted once the model is in memory (the sklearn flavour reads the file fully).
    source = client.get_model_version_download_uri(registered, version)
    with tempfile.TemporaryDirectory(prefix="streamfn-model-") as directory:
        path = mlflow.artifacts.download_artifacts(source, dst_path=directory, tracking_uri=uri)
        flavour = trusted(Path(path), flavours, api_name, f"{registered} v{version}")
        schema = schema_in(Path(path), api_name, registered, version)  # refused: no load
        profile = json_in(Path(path), schemas.REFERENCE_FILE)
        model = mlflow.pyfunc.load_model(path)
        estimator, schema = estimator_of(model, schema)
        calibrated = calibration_in(Path(path), schema, estimator)
        served, choice = runtime_of(runtime, Path(path), schema, model, estimator)
    metrics.MODEL_LOADS.labels(api_name, version).inc()
    # One line per load says which runtime serves and why; a warning when a compiled graph was
    # refused (failed parity, or cannot be opened), so that it is not missed.
    log.log(
        logging.WARNING if choice.refused else logging.INFO,
        "model loaded",
        extra={
            "model": api_name,
            "registered_model": registered,
            "version": version,
            "runtime": choice.runtime,
            "runtime_reason": choice.reason,
            "flavour": flavour,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return LoadedModel(schema, model, estimator, profile, served, choice, calibrated)


def calibration_in(path: Path, schema: ModelSchema, estimator: Any) -> dict[str, Any] | None:
    """A downloaded classifier's calibration, when it has one for its own classes (one that
    names other classes is logged and left out: its estimates would be about another model)."""
    found = json_in(path, calibration.FILE)
    if found is None or schema.output != "class":
        return None
    classes = [str(c) for c in getattr(estimator, "classes_", ())]
    if found.get("classes") != classes:
        log.warning("calibration left out: its classes are not the model's",
                    extra={"model": schema.model, "version": schema.version,
                           "calibrated": found.get("classes"), "classes": classes})  # fmt: skip
        return None
    return found


def serving(api_name: str, role: str, version: str | None) -> None:
    """Publish the version this process serves in a role (None: none any more)."""
    gauge = metrics.SERVED_VERSION
    if version is None:
        with contextlib.suppress(KeyError):  # none published yet
            gauge.remove(api_name, role)
    elif version.isdigit():  # the registry's versions are numbers
        gauge.labels(api_name, role).set(int(version))


class ModelCache:
    """Serves each model's alias version, re-resolving it at most every `refresh_s` seconds."""

    def __init__(
        self,
        tracking_uri: str,
        alias: str,
        refresh_s: float,
        models: Mapping[str, str],
        flavours: frozenset[str] = trust.DEFAULT,
        clock: Callable[[], float] = time.monotonic,
        runtime: str = AUTO,
    ) -> None:
        if tracking_uri.startswith(("http://", "https://")):
            fail_fast_http()
        self.runtime = runtime  # PREDICT_RUNTIME
        self._uri = tracking_uri
        self._registry = registry.open_registry(tracking_uri)
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._alias = alias
        self._refresh_s = refresh_s
        self.models = dict(models)
        self._clock = clock
        self.flavours = flavours
        self._served: dict[str, LoadedModel] = {}
        self._checked: dict[str, float] = {}
        self._loads = 0
        self._lock = threading.Lock()  # guards the dicts; never held while the registry is asked
        self._loading = threading.Lock()  # one resolve-and-load at a time
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-refresh")
        self._refreshing: dict[str, Future[None]] = {}
        self._profiles: dict[tuple[str, str], dict[str, Any] | None] = {}
        # A version already in memory elsewhere (the challenger promoted): taken, not loaded.
        self.reuse: Callable[[str, str], LoadedModel | None] = lambda _api, _version: None

    @property
    def loads(self) -> int:
        """How many (name, version) loads happened in this process."""
        return self._loads

    def served_versions(self) -> dict[str, str]:
        """API name -> version currently served, for the models loaded so far."""
        with self._lock:
            return {name: model.version for name, model in self._served.items()}

    def get(self, api_name: str) -> LoadedModel:
        """The model to serve now. A model already served is returned at once; when its refresh
        interval has passed, the alias is resolved again (and a new version loaded) in the
        background, so that a batch never waits for the registry."""
        registered = self.models.get(api_name)
        if registered is None:
            valid = ", ".join(self.models)
            raise ModelRefusedError(f"unknown model {api_name!r}: valid names are {valid}")
        with self._lock:
            served = self._served.get(api_name)
            if served is not None:
                if self._due(api_name) and api_name not in self._refreshing:
                    self._checked[api_name] = self._clock()
                    self._refreshing[api_name] = self._pool.submit(
                        self._refresh_in_background, api_name, registered, served
                    )
                return served
            self._checked[api_name] = self._clock()
        return self._first_load(api_name, registered)

    def settle(self) -> None:
        """Wait for the refreshes in flight (tests, and a clean shutdown)."""
        for future in list(self._refreshing.values()):
            future.result()

    def profile(self, api_name: str, version: str) -> dict[str, Any] | None:
        """The reference profile of a version of a model (the served one's, or the registry's)."""
        served = self._served.get(api_name)
        if served is not None and served.version == version:
            return served.profile
        key = (api_name, version)
        if key not in self._profiles:
            name = self.models[api_name]
            self._profiles[key] = self._registry.json_file(name, version, schemas.REFERENCE_FILE)
        return self._profiles[key]

    def _first_load(self, api_name: str, registered: str) -> LoadedModel:
        """Resolve and load a model never served here; the batch waits for it (a cold start)."""
        with self._loading:
            served = self._served.get(api_name)
            if served is not None:  # another thread loaded it meanwhile
                return served
            try:
                return self._refresh(api_name, registered, None)
            except SchemaError as refused:
                raise ModelRefusedError(
                    f"model {api_name!r} ({registered}) cannot be served: {refused}"
                ) from refused
            except Exception as error:  # any failure of the registry or the load
                raise ModelUnavailableError(
                    f"model {api_name!r} ({registered}@{self._alias}) unavailable: {error}"
                ) from error

    def _refresh_in_background(self, api_name: str, registered: str, served: LoadedModel) -> None:
        """Resolve the alias again and swap in a new version; on failure, keep serving."""
        try:
            with self._loading:
                self._refresh(api_name, registered, served)
        except Exception as error:  # whatever broke, the served version is still good
            self._log_failed_refresh(served, error)
        finally:
            with self._lock:
                self._refreshing.pop(api_name, None)

    def _due(self, api_name: str) -> bool:
        """Whether the alias of this model should be resolved again."""
        return self._clock() - self._checked[api_name] >= self._refresh_s

    def _refresh(self, api_name: str, registered: str, served: LoadedModel | None) -> LoadedModel:
        """Resolve the alias and load its version if it is not the one served."""
        version = self._resolve(registered)
        if served is not None and served.version == version:
            return served
        loaded = self.reuse(api_name, version) or self._load(api_name, registered, version)
        with self._lock:
            self._served[api_name] = loaded  # the previous version, if any, is dropped
        serving(api_name, "champion", version)
        return loaded

    def _resolve(self, registered: str) -> str:
        """The version the alias points to, or the latest version when the alias is absent."""
        found = self._registry.alias_version(registered, self._alias)
        if not found.via_alias:
            log.warning(
                "alias absent: serving the latest version",
                extra={"registered_model": registered, "alias": self._alias,
                       "version": found.version},
            )  # fmt: skip
        return found.version

    def _load(self, api_name: str, registered: str, version: str) -> LoadedModel:
        loaded = load_version(self._client, self._uri, api_name, registered, version,
                              self.runtime, self.flavours)  # fmt: skip
        self._loads += 1
        return loaded

    def _log_failed_refresh(self, served: LoadedModel, error: Exception) -> None:
        """One structured line for a refresh that failed while a cached version serves."""
        log.warning(
            "model refresh failed: serving the cached version",
            extra={
                "model": served.api_name,
                "registered_model": served.registered_name,
                "version": served.version,
                "alias": self._alias,
                "retry_in_s": self._refresh_s,
                "error": f"{type(error).__name__}: {error}",
            },
        )
