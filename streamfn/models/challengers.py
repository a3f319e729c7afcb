"""Each model's challenger: the version its CHALLENGER_ALIAS names, loaded beside the champion.

Unlike the champion, a challenger is optional and never waited for. Its alias is resolved, and
its version loaded, on a thread of its own at most every MODEL_REFRESH_S; until then (and while
the alias is absent) batches run without shadow rows. A version that fails to load, or whose
predict raises, is counted, logged and dropped until the next refresh, which tries it again. A
registry that cannot be reached keeps the loaded challenger, as it keeps the champion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from mlflow import MlflowClient

from streamfn.core import metrics
from streamfn.models import registry, trust
from streamfn.models.cache import serving
from streamfn.models.loaded import LoadedModel
from streamfn.models.loading import load_version
from streamfn.models.runtimes.choice import AUTO

log = logging.getLogger(__name__)


class ChallengerCache:
    """Serves each model's challenger version, or None; resolves and loads in the background."""

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
        self._uri = tracking_uri
        self.runtime = runtime  # PREDICT_RUNTIME: a challenger is served as a champion would be
        self._registry = registry.open_registry(tracking_uri)
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.alias = alias
        self._refresh_s = refresh_s
        self.models = dict(models)
        self.flavours = flavours
        self.clock = clock
        self._served: dict[str, LoadedModel] = {}
        self._retired: dict[str, LoadedModel] = {}  # alias removed (promoted?): kept for reuse
        # The version the alias names that cannot serve now (its load or its predict failed),
        # until the next refresh loads it: the canary counts its share as failed meanwhile.
        self._failing: dict[str, str] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="challenger-refresh")
        self._refreshing: dict[str, Future[None]] = {}

    def get(self, api_name: str) -> LoadedModel | None:
        """The challenger to score with now, None when there is none (yet)."""
        with self._lock:
            checked = self._checked.get(api_name)
            due = checked is None or self.clock() - checked >= self._refresh_s
            if due and api_name not in self._refreshing and api_name in self.models:
                self._checked[api_name] = self.clock()
                self._refreshing[api_name] = self._pool.submit(self._refresh, api_name)
            return self._served.get(api_name)

    def loaded(self, api_name: str, version: str) -> LoadedModel | None:
        """This version of a model if it is (or just was) the challenger: a promoted challenger
        becomes champion without a second load."""
        with self._lock:
            for held in (self._served, self._retired):
                found = held.get(api_name)
                if found is not None and found.version == version:
                    self._retired.pop(api_name, None)
                    return found
        return None

    def failing(self, api_name: str) -> str | None:
        """The challenger version that failed to load or predict and is not served, if any."""
        with self._lock:
            return self._failing.get(api_name)

    def settle(self) -> None:
        """Wait for the refreshes in flight (tests, and a clean shutdown)."""
        for future in list(self._refreshing.values()):
            future.result()

    def drop(self, model: LoadedModel, error: Exception) -> None:
        """A version whose predict in shadow raised: counted and logged; the challenger is
        unused until the next refresh (a champion in shadow of the canary stays: it serves)."""
        dropped = False
        with self._lock:
            if self._served.get(model.api_name) is model:
                del self._served[model.api_name]
                self._failing[model.api_name] = model.version
                dropped = True
        if dropped:
            serving(model.api_name, "challenger", None)
        metrics.SHADOW_FAILURES.labels(model.api_name, "predict").inc()
        what = "no shadow rows until the next refresh" if dropped else "no shadow rows this batch"
        log.warning(
            f"{'challenger' if dropped else 'version'} failed to predict in shadow: {what}",
            extra={"model": model.api_name, "version": model.version,
                   "retry_in_s": self._refresh_s, "error": f"{type(error).__name__}: {error}"},
        )  # fmt: skip

    def _refresh(self, api_name: str) -> None:
        registered = self.models[api_name]
        try:
            self._resolve_and_load(api_name, registered)
        finally:
            with self._lock:
                self._refreshing.pop(api_name, None)

    def _resolve_and_load(self, api_name: str, registered: str) -> None:
        try:
            version = self._registry.alias_target(registered, self.alias)
        except registry.RegistryError as error:
            where = {"model": api_name, "alias": self.alias, "error": str(error)}
            log.warning("challenger alias not resolved: kept as it is", extra=where)
            return
        with self._lock:
            served = self._served.get(api_name)
            if version is None:
                self._failing.pop(api_name, None)
                if served is not None:
                    self._retired[api_name] = self._served.pop(api_name)
                    serving(api_name, "challenger", None)
                return
            if served is not None and served.version == version:
                return
        try:
            loaded = load_version(self._client, self._uri, api_name, registered, version,
                                  self.runtime, self.flavours)  # fmt: skip
        except Exception as error:  # any failure of the download or the load
            with self._lock:
                self._served.pop(api_name, None)
                self._failing[api_name] = version
            serving(api_name, "challenger", None)
            metrics.SHADOW_FAILURES.labels(api_name, "load").inc()
            log.warning(
                "challenger not loaded: no shadow rows until the next refresh",
                extra={"model": api_name, "registered_model": registered, "version": version,
                       "alias": self.alias, "retry_in_s": self._refresh_s,
                       "error": f"{type(error).__name__}: {error}"},
            )  # fmt: skip
            return
        with self._lock:
            self._served[api_name] = loaded
            self._retired.pop(api_name, None)
            self._failing.pop(api_name, None)
        serving(api_name, "challenger", version)
        log.info("challenger serving in shadow",
                 extra={"model": api_name, "version": version, "alias": self.alias})  # fmt: skip
