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

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.pyfunc import PyFuncModel

from streamfn import metrics, registry
from streamfn.constants import API_NAMES, REGISTERED_MODELS
from streamfn.features import FEATURE_NAMES, NUMERIC

log = logging.getLogger(__name__)

_NUMERIC = frozenset(NUMERIC)
HTTP_MAX_RETRIES = 1
HTTP_TIMEOUT_S = 4


class ModelUnavailableError(RuntimeError):
    """No version of the model could be resolved or loaded (and none is cached)."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded in memory, predicting whole batches."""

    api_name: str
    registered_name: str
    version: str
    model: PyFuncModel = field(repr=False, compare=False)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The classes (0, 1, 2) of every row, in one call so the schema is enforced once."""
        if frame.empty:
            return np.empty(0, dtype=np.int64)
        return np.asarray(self.model.predict(frame)).astype(np.int64, copy=False)


def frame_of(records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """The 13-column raw frame (FEATURE_NAMES order) of canonical records; absent features NaN."""
    columns: dict[str, np.ndarray] = {}
    for name in FEATURE_NAMES:
        values = [record.get(name) for record in records]
        if name in _NUMERIC:
            # float64, as the signature says (MLflow refuses int64); numpy reads None as NaN.
            columns[name] = np.array(values, dtype=np.float64)
        else:
            # SimpleImputer counts only NaN as missing: a None category would pass through as an
            # unknown value and be one-hot encoded as all zeros instead of being imputed.
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=object)
    # Column by column: 1.7 times faster than a frame of rows converted afterwards
    # (benchmarks/bench_infer.py).
    return pd.DataFrame(columns, columns=list(FEATURE_NAMES))


def fail_fast_http() -> None:
    """Make MLflow's HTTP calls in this process fail within seconds instead of minutes."""
    for variable, value in (
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES, HTTP_MAX_RETRIES),
        (MLFLOW_HTTP_REQUEST_TIMEOUT, HTTP_TIMEOUT_S),
    ):
        if not variable.is_set():  # an operator's explicit choice wins
            variable.set(value)


class ModelCache:
    """Serves each model's alias version, re-resolving it at most every `refresh_s` seconds."""

    def __init__(
        self,
        tracking_uri: str,
        alias: str,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tracking_uri.startswith(("http://", "https://")):
            fail_fast_http()
        self._uri = tracking_uri
        self._registry = registry.open_registry(tracking_uri)
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._alias = alias
        self._refresh_s = refresh_s
        self._clock = clock
        self._served: dict[str, LoadedModel] = {}
        self._checked: dict[str, float] = {}
        self._loads = 0
        self._lock = threading.Lock()

    @property
    def loads(self) -> int:
        """How many (name, version) loads happened in this process."""
        return self._loads

    def served_versions(self) -> dict[str, str]:
        """API name -> version currently served, for the models loaded so far."""
        with self._lock:
            return {name: model.version for name, model in self._served.items()}

    def get(self, api_name: str) -> LoadedModel:
        """The model to serve now, refreshed from the registry when the interval has passed."""
        registered = REGISTERED_MODELS.get(api_name)
        if registered is None:
            valid = ", ".join(API_NAMES)
            raise ModelUnavailableError(f"unknown model {api_name!r}: valid names are {valid}")
        with self._lock:
            served = self._served.get(api_name)
            if served is not None and not self._due(api_name):
                return served
            self._checked[api_name] = self._clock()
            try:
                return self._refresh(api_name, registered, served)
            except Exception as error:  # whatever broke, a cached version is still good
                if served is None:
                    raise ModelUnavailableError(
                        f"model {api_name!r} ({registered}@{self._alias}) unavailable: {error}"
                    ) from error
                self._log_failed_refresh(served, error)
                return served

    def _due(self, api_name: str) -> bool:
        """Whether the alias of this model should be resolved again."""
        return self._clock() - self._checked[api_name] >= self._refresh_s

    def _refresh(self, api_name: str, registered: str, served: LoadedModel | None) -> LoadedModel:
        """Resolve the alias and load its version if it is not the one served."""
        version = self._resolve(registered)
        if served is not None and served.version == version:
            return served
        loaded = self._load(api_name, registered, version)
        self._served[api_name] = loaded  # the previous version, if any, is dropped
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
        """Download one version's artifacts and load them as a pyfunc model."""
        started = time.perf_counter()
        # An explicit tracking URI, not the process-global one, and a private copy that is
        # deleted once the model is in memory (the sklearn flavour reads the file fully).
        source = self._client.get_model_version_download_uri(registered, version)
        with tempfile.TemporaryDirectory(prefix="streamfn-model-") as directory:
            path = mlflow.artifacts.download_artifacts(
                source, dst_path=directory, tracking_uri=self._uri
            )
            model = mlflow.pyfunc.load_model(path)
        self._loads += 1
        metrics.MODEL_LOADS.labels(api_name, version).inc()
        log.info(
            "model loaded",
            extra={
                "model": api_name,
                "registered_model": registered,
                "version": version,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return LoadedModel(api_name, registered, version, model)

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
