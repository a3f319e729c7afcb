"""The schema of every configured model, as ingest validates with it: read from the registry,
kept in memory, refreshed with the alias, and shared through Redis.

The first request for a model reads its schema (the version the alias points to: its signature,
constraints and labels) and compiles a validator. After MODEL_REFRESH_S the next request starts a
refresh in the background and is served with the schema in hand, so a slow or dead registry never
holds a request up. Each schema read is also copied to Redis: an ingest that starts while the
registry is unreachable validates with the copy. A model whose schema was never read answers 503
with Retry-After; a version without a signature, or of a flavour MODEL_FLAVORS does not list
(streamfn.models.trust), is refused the same way, with one log line naming why.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from redis.exceptions import RedisError

from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.ingest.validation import Validator
from streamfn.models import schemas
from streamfn.models.registry import Registry, RegistryError, open_registry
from streamfn.models.schemas import ModelSchema, SchemaError

log = logging.getLogger(__name__)
# How long the copy of a schema outlives its last read: a model removed from MODELS leaves none.
SCHEMA_KEPT_S = 30 * 86_400


class ModelUnavailableError(RuntimeError):
    """A configured model cannot take records now; `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class Entry:
    """What is known of one model: its validator (None: refused) and when it was checked."""

    validator: Validator | None
    checked: float
    error: str | None = None


class SchemaCache:
    """Validators per configured model, kept fresh without holding requests up."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.keys = settings.keys
        self._registry = registry
        self.entries: dict[str, Entry] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.retry_after_s = max(1, int(settings.MODEL_REFRESH_S))
        self._profiles: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    @property
    def registry(self) -> Registry:
        """The registry, opened on first use (a store without a server needs mlflow)."""
        if self._registry is None:
            self._registry = open_registry(self.settings.MLFLOW_TRACKING_URI)
        return self._registry

    async def validator(self, model: str, redis: AsyncClient) -> Validator:
        """The validator of a configured model, or ModelUnavailableError."""
        entry = self.entries.get(model)
        if entry is None:
            entry = await self._first_read(model, redis)
        elif time.monotonic() - entry.checked >= self.settings.MODEL_REFRESH_S:
            self._refresh_soon(model, redis)
        if entry.validator is None:
            raise ModelUnavailableError(entry.error or "unavailable", self.retry_after_s)
        return entry.validator

    async def profile(self, model: str, version: str) -> dict[str, Any] | None:
        """A version's reference profile (None when it has none), re-read every MODEL_REFRESH_S;
        while the registry is unreachable, the one in hand (or None)."""
        key = (model, version)
        held = self._profiles.get(key)
        if held is not None and time.monotonic() - held[0] < self.settings.MODEL_REFRESH_S:
            return held[1]
        name = self.settings.models[model]
        try:
            found = await asyncio.to_thread(
                self.registry.json_file, name, version, schemas.REFERENCE_FILE
            )
        except RegistryError as error:
            log.warning("reference profile unreadable", extra={"model": model, "error": str(error)})
            return held[1] if held else None
        self._profiles[key] = (time.monotonic(), found)
        return found

    def cached(self, model: str) -> ModelSchema | None:
        """The schema in hand for a model, if any (never reads the registry)."""
        entry = self.entries.get(model)
        return entry.validator.schema if entry and entry.validator else None

    async def _first_read(self, model: str, redis: AsyncClient) -> Entry:
        try:
            entry = await self._read(model, redis)
        except RegistryError as error:
            entry = await self._from_redis(model, redis, error)
        self.entries[model] = entry
        # The long-lived heap is loaded now (the app, the registry client, and mlflow itself for a
        # store without a server): move it out of the collector's sight, so that a full
        # collection under load scans the requests' garbage only. Without this, each one paused
        # the single ingest worker for 100-200 ms: the p99 of the bench's ingest-alone stage.
        gc.freeze()
        return entry

    async def _read(self, model: str, redis: AsyncClient) -> Entry:
        """Read the schema from the registry; keep a copy in Redis."""
        name = self.settings.models[model]
        try:
            schema = await asyncio.to_thread(self._schema_of, model, name)
        except SchemaError as refused:
            message = f"model {model!r} ({name}) cannot be served: {refused}"
            log.error("model refused", extra={"model": model, "registered_model": name,
                                              "error": str(refused)})  # fmt: skip
            return Entry(None, time.monotonic(), message)
        try:
            await redis.set(self.keys.schema(model), orjson.dumps(schema.to_json()),
                            ex=SCHEMA_KEPT_S)  # fmt: skip
        except RedisError as error:  # the copy is a convenience; the schema is good
            log.warning("schema not copied to Redis", extra={"model": model, "error": str(error)})
        return Entry(Validator(schema), time.monotonic())

    def _schema_of(self, model: str, name: str) -> ModelSchema:
        version = self.registry.alias_version(name, self.settings.MODEL_ALIAS).version
        return self.registry.schema(model, name, version, self.settings.model_flavours)

    async def _from_redis(self, model: str, redis: AsyncClient, cause: RegistryError) -> Entry:
        """The copy of the model's schema in Redis, when the registry cannot be read."""
        try:
            raw = await redis.get(self.keys.schema(model))
        except RedisError:
            raw = None
        if raw is None:
            message = (
                f"model {model!r}: the registry cannot be read ({cause}) and no schema is kept"
            )
            return Entry(None, time.monotonic(), message)
        log.warning("registry unreachable: validating with the schema kept in Redis",
                    extra={"model": model, "error": str(cause)})  # fmt: skip
        return Entry(Validator(ModelSchema.from_json(orjson.loads(raw))), time.monotonic())

    def _refresh_soon(self, model: str, redis: AsyncClient) -> None:
        if model in self._refreshing:
            return
        self._refreshing.add(model)
        task = asyncio.create_task(self._refresh(model, redis))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, model: str, redis: AsyncClient) -> None:
        """Re-read a model's schema; on failure keep the one in hand and say so."""
        try:
            fresh = await self._read(model, redis)
        except RegistryError as error:
            held = self.entries[model]
            held.checked = time.monotonic()
            log.warning("schema refresh failed: keeping the schema in hand",
                        extra={"model": model, "error": str(error)})  # fmt: skip
            return
        finally:
            self._refreshing.discard(model)
        held = self.entries.get(model)
        unchanged = (
            held is not None and held.validator is not None and fresh.validator is not None
            and held.validator.schema == fresh.validator.schema
        )  # fmt: skip
        if unchanged:
            held.checked = fresh.checked  # keep the validator, and the spellings it learnt
            return
        self.entries[model] = fresh


async def _schemas(request: Request) -> SchemaCache:
    return request.app.state.schemas


SchemasDep = Annotated[SchemaCache, Depends(_schemas)]
