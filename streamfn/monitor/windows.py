"""Reading a model's recent windows from Redis, with their statistics (GET /monitoring)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streamfn.core.connections import AsyncClient
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.monitor import stats

AsyncProfiles = Callable[[str, str], Awaitable[dict[str, Any] | None]]


async def recent(
    redis: AsyncClient, keys: Keys, model: str, count: int
) -> list[tuple[str, int, dict[str, int]]]:
    """(version, start, counts) of a model's `count` newest windows, newest first."""
    members = [m.decode() for m in await redis.zrevrange(keys.window_index(model), 0, count - 1)]
    if not members:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for member in members:
            version, start = member.rsplit(":", 1)
            pipe.hgetall(keys.window(model, version, int(start)))
        found = await pipe.execute()
    windows = []
    for member, raw in zip(members, found, strict=True):
        if raw:  # expired meanwhile
            version, start = member.rsplit(":", 1)
            windows.append((version, int(start), {k.decode(): int(v) for k, v in raw.items()}))
    return windows


async def reports(
    redis: AsyncClient, model: str, count: int, settings: Settings, profiles: AsyncProfiles
) -> list[dict[str, Any]]:
    """The statistics of a model's newest windows, newest first."""
    found = []
    for version, start, counts in await recent(redis, settings.keys, model, count):
        challengers = {v: await profiles(model, v) for v in stats.challenger_versions(counts)}
        report = stats.window_report(
            counts, await profiles(model, version), settings.MONITOR_MIN_RECORDS,
            settings.DRIFT_PSI, challengers, settings.ATTRIBUTION_NDCG,
        )  # fmt: skip
        found.append({"model": model, "version": version, "window_start": start,
                      "window_end": start + int(settings.MONITOR_WINDOW_S), **report})  # fmt: skip
    return found
