"""A model's window counts as Redis keeps them (a day, or three windows), read by the gate and
the canary: each version's windows, with their starts."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys


@dataclass(frozen=True)
class Kept:
    """One window's counts of one version."""

    version: str
    start: int
    counts: dict[str, int]


def kept(
    redis: SyncClient, keys: Keys, model: str, versions: Collection[str], since: int | None = None
) -> list[Kept]:
    """The windows of these versions of a model (starting at `since` or later), oldest first."""
    members = [m.decode().rsplit(":", 1) for m in redis.zrange(keys.window_index(model), 0, -1)]
    wanted = [
        (v, int(s)) for v, s in members if v in versions and (since is None or int(s) >= since)
    ]
    with redis.pipeline(transaction=False) as pipe:
        for version, start in wanted:
            pipe.hgetall(keys.window(model, version, start))
        found = pipe.execute() if wanted else []
    return [
        Kept(version, start, {k.decode(): int(v) for k, v in raw.items()})
        for (version, start), raw in zip(wanted, found, strict=True)
        if raw  # expired meanwhile
    ]
