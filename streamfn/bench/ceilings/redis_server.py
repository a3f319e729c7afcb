"""(a) XADD/s and (b) XREADGROUP/s of one redis-server, from redis-py and from redis-benchmark."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from redis import Redis

from streamfn.bench.ceilings.results import SIZES, Ceiling, Say, entry_fields, shape
from streamfn.core import connections

PIPELINE_DEPTH = 1000  # commands per pipeline round trip
PIPELINE_BYTES = 8 * 1024 * 1024  # ... fewer when the entries are large
READ_COUNT = 256  # XREADGROUP COUNT, as the poller reads (BATCH_SIZE)
MAX_STREAM_BYTES = 2 * 1024**3  # stop XADDing a shape once this much data has been sent
GROUP = "ceilings"


def used_memory(client: Redis) -> int:
    """The redis-server's used memory, in bytes."""
    return int(client.info("memory")["used_memory"])


def server_cpu_s(client: Redis) -> float:
    """CPU seconds the redis-server has used so far (user + system, all its threads)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure_xadd_c_client(
    redis_url: str, stream: str, records: list[dict[str, Any]], entries: int,
    depth: int = PIPELINE_DEPTH,
) -> Ceiling | None:  # fmt: skip
    """The same XADDs from redis-benchmark (one connection, C, pipelines of `depth`): the
    server's ceiling without redis-py's cost per command. None without redis-benchmark."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    fields = entry_fields(records)
    size = len(fields["data"])
    depth = max(1, min(depth, PIPELINE_BYTES // size))
    url = urlsplit(redis_url)
    argv = [a.decode() if isinstance(a, bytes) else a for kv in fields.items() for a in kv]
    command = [binary, "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379),
               "-n", str(entries), "-P", str(depth), "-c", "1", "--csv", "XADD", stream, "*",
               *argv]  # fmt: skip
    client = connections.worker_client(redis_url)
    cpu = server_cpu_s(client)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    cpu = server_cpu_s(client) - cpu
    rate = float(done.stdout.strip().splitlines()[-1].rsplit('","', 7)[1])
    elapsed = entries / rate  # redis-benchmark's own timing, without its start and end
    return Ceiling("xadd", shape(len(records), "entry") + ", redis-benchmark", "entries", rate,
                   len(records), entries, elapsed, size,
                   {"depth": depth, "server cores": cpu / elapsed,
                    "redis µs/entry": cpu / entries * 1e6})  # fmt: skip


def measure_xadd(
    client: Redis, stream: str, records: list[dict[str, Any]], seconds: float,
    depth: int = PIPELINE_DEPTH, max_bytes: int = MAX_STREAM_BYTES,
) -> Ceiling:  # fmt: skip
    """Entries/s XADDed to `stream` by pipelines of `depth` (fewer for large entries), for
    `seconds` or until `max_bytes` of data were sent. The entry's Redis memory is read off
    used_memory before and after."""
    fields = entry_fields(records)
    size = len(fields["data"])
    depth = max(1, min(depth, PIPELINE_BYTES // size))
    before = used_memory(client)
    cpu = server_cpu_s(client)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    with client.pipeline(transaction=False) as pipe:
        while True:
            for _ in range(depth):
                pipe.xadd(stream, fields)
            pipe.execute()
            count += depth
            now = time.perf_counter()
            if now >= deadline or count * size >= max_bytes:
                break
    elapsed = now - started
    server_cores = (server_cpu_s(client) - cpu) / elapsed
    per_entry = (used_memory(client) - before) / count
    return Ceiling("xadd", shape(len(records), "entry"), "entries", count / elapsed,
                   len(records), count, elapsed, size,
                   {"depth": depth, "server cores": server_cores,
                    "redis µs/entry": server_cores * elapsed / count * 1e6,
                    "redis B/entry": per_entry})  # fmt: skip


def measure_xreadgroup(
    client: Redis, stream: str, records_per_entry: int, seconds: float, count: int = READ_COUNT
) -> Ceiling:
    """Entries/s read back from `stream` by XREADGROUP COUNT `count` as a new group, each round
    trip also XACKing what the previous one read; for `seconds` or until the stream is read."""
    client.xgroup_create(stream, GROUP, id="0")
    read = 0
    size = 0
    pending: list[bytes] = []
    cpu = server_cpu_s(client)
    started = time.perf_counter()
    deadline = started + seconds
    with client.pipeline(transaction=False) as pipe:
        while True:
            if pending:
                pipe.xack(stream, GROUP, *pending)
            pipe.xreadgroup(GROUP, "reader", {stream: ">"}, count=count)
            replies = pipe.execute()
            found = replies[-1][0][1] if replies[-1] else []
            if not size and found:
                size = len(found[0][1][b"data"])
            pending = [entry_id for entry_id, _ in found]
            read += len(found)
            now = time.perf_counter()
            if not found or now >= deadline:
                break
    elapsed = now - started
    server_cores = (server_cpu_s(client) - cpu) / elapsed
    if pending:
        client.xack(stream, GROUP, *pending)
    if read == 0:
        raise RuntimeError(f"nothing to read in {stream}: XADD to it first")
    return Ceiling("xreadgroup", shape(records_per_entry, "entry"), "entries", read / elapsed,
                   records_per_entry, read, elapsed, size,
                   {"count": count, "server cores": server_cores,
                    "redis µs/entry": server_cores / read * elapsed * 1e6})  # fmt: skip


def measure_redis(
    redis_url: str, records: list[dict[str, Any]], seconds: float, sizes: Sequence[int] = SIZES,
    say: Say = lambda _: None, parts: Sequence[str] = ("xadd", "xreadgroup"),
    c_client: bool = True,
) -> list[Ceiling]:  # fmt: skip
    """(a) and (b) against the redis-server at `redis_url`, each size in turn (its stream is
    deleted afterwards); with `c_client`, (a) from redis-benchmark too."""
    client = connections.worker_client(redis_url)
    found: list[Ceiling] = []
    for size in sizes:
        stream = f"ceilings:{size}"
        client.delete(stream)
        say(f"measuring XADD, {shape(size, 'entry')} …")
        written = measure_xadd(client, stream, records[:size], seconds)
        say(f"  {written.per_s:,.0f} entries/s, {written.records_per_s:,.0f} records/s, "
            f"{written.mb_per_s:,.1f} MB/s, redis-server at "
            f"{written.extra['server cores']:.2f} cores")  # fmt: skip
        if "xadd" in parts:
            found.append(written)
        if "xreadgroup" in parts:
            say(f"measuring XREADGROUP + XACK, {shape(size, 'entry')} …")
            read = measure_xreadgroup(client, stream, size, seconds)
            say(f"  {read.per_s:,.0f} entries/s, {read.records_per_s:,.0f} records/s, "
                f"redis-server at {read.extra['server cores']:.2f} cores")  # fmt: skip
            found.append(read)
        client.delete(stream)
        if "xadd" in parts and c_client:
            entries = int(
                min(written.per_s * seconds * 3, MAX_STREAM_BYTES / 2 / written.bytes_per_unit)
            )
            say(f"measuring XADD from redis-benchmark (C client), {shape(size, 'entry')} …")
            server = measure_xadd_c_client(redis_url, stream, records[:size], max(entries, 1000))
            if server is None:
                say("  redis-benchmark is not on PATH: skipped")
            else:
                say(f"  {server.per_s:,.0f} entries/s, {server.records_per_s:,.0f} records/s, "
                    f"{server.mb_per_s:,.1f} MB/s")  # fmt: skip
                found.append(server)
            client.delete(stream)
    return found
