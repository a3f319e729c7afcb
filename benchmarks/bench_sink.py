"""CSV encoding time per batch, and the Redis memory one message's result takes, and what a
request's Idempotency-Key leaves beside it.

Run: .venv/bin/python -m benchmarks.bench_sink   (needs redis-server on PATH)
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

import redis

from streamfn.core import connections
from streamfn.core import message_state as results
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.local import stack
from streamfn.local.stack import free_port
from streamfn.models.schemas import seed_schema
from streamfn.sink.formats.csv import encode as encode_csv
from streamfn.sink.rows import Row
from streamfn.stream.redis.writer import StreamWriter
from tests.factories import full_record

SCHEMA = seed_schema("lightgbm", "LightGBM_Classifier", "3")
URI = "s3://predictions/predictions/model=lightgbm/date=2026-11-26/1795678695219-0_3f9a0c1d2e3b4a5f.csv"


def encode_ms(rows: int, repeats: int = 20) -> float:
    """Best time of encode_csv over `rows` full rows, in ms."""
    batch = [
        Row(
            f"{i}-0",
            0,
            "lightgbm",
            "LightGBM_Classifier",
            "3",
            i % 3,
            1795678695219,
            1795678695300,
            full_record(),
        )
        for i in range(rows)
    ]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        encode_csv(SCHEMA, batch)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def result_bytes(client: redis.Redis, records: int) -> int:
    """MEMORY USAGE of a done result holding `records` predictions."""
    # As the infer function saves it: with the object's write time and the message's acceptance.
    result = results.done("lightgbm", "3", [1] * records, URI, written_at=1795678695512,
                          received_at=1795678695430)  # fmt: skip
    results.save(client, [("1795678695430-0", result)], 3600, Keys().result)
    return int(client.memory_usage(Keys().result("1795678695430-0")))


async def idempotency_bytes(url: str) -> int:
    """MEMORY USAGE of what one request's Idempotency-Key leaves, appended as ingest appends."""
    settings = Settings(REDIS_URL=url)
    client = connections.request_client(url)
    stream = settings.streams[0]
    await client.xgroup_create(stream, settings.CONSUMER_GROUP, id="0", mkstream=True)
    key_hash = hashlib.sha256(b"a client's request id").hexdigest()  # as ingest hashes the header
    await StreamWriter(client, settings).append("lightgbm", [full_record()], key_hash)
    used = await client.memory_usage(settings.keys.idempotency(key_hash, stream))
    await client.aclose()
    return int(used)


def main() -> int:
    print("| rows | encode_csv ms |\n|---:|---:|")
    for rows in (1, 256, 1000):
        print(f"| {rows} | {encode_ms(rows):.2f} |")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    children = stack.Stack(Path(tempfile.mkdtemp(prefix="bench-sink-")))
    try:
        children.start(stack.Service("redis", command, stack.redis_ok(url), (port,)))
        client = redis.Redis.from_url(url)
        print("\n| records in the message | result bytes in Redis |\n|---:|---:|")
        for records in (1, 100):
            print(f"| {records} | {result_bytes(client, records)} |")
        print("\n| what | bytes in Redis |\n|---|---:|")
        print(f"| a request's Idempotency-Key | {asyncio.run(idempotency_bytes(url))} |")
    finally:
        children.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
