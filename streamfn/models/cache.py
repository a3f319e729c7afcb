"""The registry side of inference: resolve `models:/NAME@ALIAS`, load each version once
(streamfn.models.loading), keep them warm, and follow the alias in the background."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mlflow import MlflowClient

from streamfn.core import metrics
from streamfn.models import registry, schemas, trust
from streamfn.models.loaded import LoadedModel, ModelRefusedError, ModelUnavailableError
from streamfn.models.loading import fail_fast_http, load_version
from streamfn.models.runtimes.choice import AUTO
from streamfn.models.schemas import SchemaError

log = logging.getLogger(__name__)


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
