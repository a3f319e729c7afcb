"""What the console shows of the pipeline, read from Redis in a few round trips: the records
accepted and written over the last minutes, the stream's lag, pending entries and dead letters,
the pollers answering, the versions each model has served, and the objects per model and date."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from streamfn.core import series
from streamfn.core.connections import AsyncClient, text
from streamfn.core.keys import Keys, dlq_key
from streamfn.core.settings import Settings

# A poller reads at least every BATCH_WINDOW_MS; one silent this long is not answering.
POLLER_SILENT_MS = 30_000
PARTITIONS_SHOWN = 60


async def status(redis: AsyncClient, settings: Settings, now_s: float) -> dict[str, Any]:
    """Totals, the per-slot series of the last minutes, and the stream's state."""
    keys = settings.keys
    slots = series.recent_slots(now_s)
    # Where ingest counts: one root, or on a Redis Cluster one per partition.
    roots = sorted(set(keys.accepted_roots()))
    # Each series is one MGET of one slot, sent on its own: a cluster's pipeline refuses MGET.
    series_reads = [redis.mget([keys.series(series.WRITTEN, s) for s in slots])]
    series_reads += [redis.mget([keys.series(series.ACCEPTED, s, at) for s in slots])
                     for at in roots]  # fmt: skip
    written, *accepted_by_root = await asyncio.gather(*series_reads)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.totals())
        for at in roots:
            pipe.hget(keys.totals(at), series.ACCEPTED)
        for stream in settings.streams:
            pipe.xlen(stream)
            pipe.xlen(dlq_key(stream))
        totals, *found = await pipe.execute()
    counted, lengths = found[: len(roots)], found[len(roots) :]
    ingested = sum(int(v or 0) for v in counted)
    accepted = [sum(int(v or 0) for v in column) for column in zip(*accepted_by_root, strict=True)]
    length, dead = sum(lengths[0::2]), sum(lengths[1::2])
    lag, pending, pollers = await _group(redis, settings, lengths[0::2])
    chart = {
        "slot_s": series.SLOT_S,
        "slots": slots,
        "ingested": accepted,
        "processed": [int(v or 0) for v in written],
    }
    return {
        "ingested": ingested,
        "processed": int(totals.get(series.WRITTEN.encode(), 0)),
        "series": chart,
        "stream_length": length,
        "lag": lag,
        "pending": pending,
        "dead_letters": dead,
        "pollers": pollers,
    }


async def _group(
    redis: AsyncClient, settings: Settings, lengths: list[int]
) -> tuple[int, int, dict[str, int]]:
    """The group's lag (each partition's bounded by its length), pending entries and pollers,
    over the partitions."""
    lag = pending = 0
    idle: dict[str, int] = {}  # a poller reading several partitions is one poller
    for stream, length in zip(settings.streams, lengths, strict=True):
        try:
            groups = await redis.xinfo_groups(stream)
            consumers = await redis.xinfo_consumers(stream, settings.CONSUMER_GROUP)
        except ResponseError:  # no stream or no group yet: nothing read, nobody reading
            groups, consumers = [], []
        group = next((g for g in groups if text(g["name"]) == settings.CONSUMER_GROUP), None)
        found = None if group is None else group.get("lag")
        # Redis can overstate the lag after an AOF reload (redis/redis#10569); the length
        # bounds it.
        lag += length if found is None else min(found, length)
        pending += 0 if group is None else group["pending"]
        for consumer in consumers:
            name = text(consumer["name"])
            idle[name] = min(idle.get(name, consumer["idle"]), consumer["idle"])
    answering = sum(1 for ms in idle.values() if ms < POLLER_SILENT_MS)
    return lag, pending, {"answering": answering, "known": len(idle)}


async def versions(
    redis: AsyncClient, keys: Keys, models: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per model, each version that has written rows and since when (epoch ms), newest first."""
    async with redis.pipeline(transaction=False) as pipe:
        for model in models:
            pipe.hgetall(keys.versions(model))
        found = await pipe.execute()
    served = {}
    for model, raw in zip(models, found, strict=True):
        entries = [{"version": text(v), "since": int(at)} for v, at in raw.items()]
        served[model] = sorted(entries, key=lambda e: e["since"], reverse=True)
    return served


async def partitions(
    redis: AsyncClient, keys: Keys, limit: int = PARTITIONS_SHOWN
) -> list[dict[str, Any]]:
    """The newest model-and-date partitions: objects, rows and the newest object's key."""
    members = [text(m) for m in await redis.zrevrange(keys.object_days(), 0, limit - 1)]
    async with redis.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hgetall(keys.objects(*member.split("/", 1)))
        found = await pipe.execute()
    shown = []
    for member, raw in zip(members, found, strict=True):
        model, day = member.split("/", 1)
        fields = {text(k): text(v) for k, v in raw.items()}
        objects, rows = int(fields.get("objects", 0)), int(fields.get("rows", 0))
        shown.append({"model": model, "date": day, "objects": objects, "rows": rows,
                      "newest": fields.get("newest")})  # fmt: skip
    shown.sort(key=lambda p: (p["date"], p["model"]), reverse=True)
    return shown


def newest_objects(shown: Sequence[dict[str, Any]], model: str | None) -> list[str]:
    """The newest object of each model's newest partition (of `model` only, when given)."""
    keys: dict[str, str] = {}
    for partition in shown:  # newest date first
        name = partition["model"]
        if (model is None or name == model) and name not in keys and partition["newest"]:
            keys[name] = partition["newest"]
    return list(keys.values())


def merge_rows(tables: Sequence[tuple[list[str], list[list[str]]]], limit: int) -> dict[str, Any]:
    """The newest `limit` rows of these CSV tables as objects, newest prediction first."""
    rows = [dict(zip(header, row, strict=False)) for header, body in tables for row in body]
    rows.sort(key=lambda r: (r.get("predicted_at", ""), r.get("message_id", "")), reverse=True)
    return {"rows": rows[:limit]}
