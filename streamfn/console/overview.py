"""What the console shows of the pipeline, read from Redis in a few round trips: the records
accepted and written over the last minutes, the stream's lag, pending entries and dead letters,
the pollers answering, the versions each model has served, and the objects per model and date."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamfn import pipeline_counts as pc
from streamfn.config import Settings
from streamfn.connections import text

# A poller reads at least every BATCH_WINDOW_MS; one silent this long is not answering.
POLLER_SILENT_MS = 30_000
PARTITIONS_SHOWN = 60


async def status(redis: Redis, settings: Settings, now_s: float) -> dict[str, Any]:
    """Totals, the per-slot series of the last minutes, and the stream's state."""
    slots = pc.recent_slots(now_s)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(pc.TOTALS_KEY)
        pipe.mget([pc.series_key(pc.ACCEPTED, s) for s in slots])
        pipe.mget([pc.series_key(pc.WRITTEN, s) for s in slots])
        pipe.xlen(settings.STREAM_KEY)
        pipe.xlen(settings.dlq_key)
        totals, accepted, written, length, dead = await pipe.execute()
    lag, pending, pollers = await _group(redis, settings, length)
    series = {
        "slot_s": pc.SLOT_S,
        "slots": slots,
        "ingested": [int(v or 0) for v in accepted],
        "processed": [int(v or 0) for v in written],
    }
    return {
        "ingested": int(totals.get(pc.ACCEPTED.encode(), 0)),
        "processed": int(totals.get(pc.WRITTEN.encode(), 0)),
        "series": series,
        "stream_length": length,
        "lag": lag,
        "pending": pending,
        "dead_letters": dead,
        "pollers": pollers,
    }


async def _group(redis: Redis, settings: Settings, length: int) -> tuple[int, int, dict]:
    """The group's lag (bounded by the stream's length), pending entries and pollers."""
    try:
        groups = await redis.xinfo_groups(settings.STREAM_KEY)
        consumers = await redis.xinfo_consumers(settings.STREAM_KEY, settings.CONSUMER_GROUP)
    except ResponseError:  # no stream or no group yet: nothing read, nobody reading
        return length, 0, {"answering": 0, "known": 0}
    group = next((g for g in groups if text(g["name"]) == settings.CONSUMER_GROUP), None)
    if group is None:
        return length, 0, {"answering": 0, "known": 0}
    lag = group.get("lag")
    # Redis can overstate the lag after an AOF reload (redis/redis#10569); the length bounds it.
    lag = length if lag is None else min(lag, length)
    answering = sum(1 for c in consumers if c["idle"] < POLLER_SILENT_MS)
    return lag, group["pending"], {"answering": answering, "known": len(consumers)}


async def versions(redis: Redis, models: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Per model, each version that has written rows and since when (epoch ms), newest first."""
    async with redis.pipeline(transaction=False) as pipe:
        for model in models:
            pipe.hgetall(pc.versions_key(model))
        found = await pipe.execute()
    served = {}
    for model, raw in zip(models, found, strict=True):
        entries = [{"version": text(v), "since": int(at)} for v, at in raw.items()]
        served[model] = sorted(entries, key=lambda e: e["since"], reverse=True)
    return served


async def partitions(redis: Redis, limit: int = PARTITIONS_SHOWN) -> list[dict[str, Any]]:
    """The newest model-and-date partitions: objects, rows and the newest object's key."""
    members = [text(m) for m in await redis.zrevrange(pc.PARTITIONS_KEY, 0, limit - 1)]
    async with redis.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hgetall(pc.partition_key(*member.split("/", 1)))
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
