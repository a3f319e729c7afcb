"""(c) requests/s of one ingest worker under wrk, and (d) records/s one poller sustains for one
model, each a `streamfn` process on servers of its own."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis import Redis

from streamfn.bench.ceilings.redis_server import PIPELINE_DEPTH, server_cpu_s
from streamfn.bench.ceilings.results import MODEL, SIZES, Ceiling, Say, entry_fields, shape
from streamfn.bench.console_cost import CpuMeter
from streamfn.core import connections

POLLER_ATTEMPTS = 4  # backlogs drained, at most, to find one that lasts about `seconds`
INGEST_CONNECTIONS = {1: 32, 100: 8}  # as `streamfn bench` drives one ingest worker


def measure_ingest(
    workdir: Path, registry: str, records: list[dict[str, Any]], seconds: float,
    sizes: Sequence[int] = SIZES, say: Say = lambda _: None,
) -> list[Ceiling]:  # fmt: skip
    """(c) requests/s of one ingest worker under wrk, as `streamfn bench` measures ingest alone
    (its services, wrk and connections): its own redis-server, nothing consuming, back-pressure
    lifted; with the redis-server's CPU per accepted request."""
    from streamfn.bench import pipeline
    from streamfn.bench.load import drive
    from streamfn.local import services, stack

    redis_port, port = stack.free_port(), stack.free_port()
    redis_url, url = f"redis://127.0.0.1:{redis_port}/0", f"http://127.0.0.1:{port}"
    env = {"REDIS_URL": redis_url, **pipeline.NO_BACKPRESSURE, "MLFLOW_TRACKING_URI": registry,
           "STREAM_PARTITIONS": "1"}  # fmt: skip
    home = workdir / "ingest"
    found = []
    children = stack.Stack(home)
    try:
        children.start(services.redis(redis_port, home / "redis"))
        ingest = children.start(services.ingest(port, env))
        client = connections.worker_client(redis_url)
        pipeline.wait_accepting(url, MODEL, records)
        for size in sizes:
            say(f"measuring one ingest worker, {shape(size, 'request')} (wrk) …")
            body = pipeline.body(records[:size])
            cpu, meter = server_cpu_s(client), CpuMeter(ingest.pid)
            meter.start()
            load = drive(f"{url}/predict_stream?model={MODEL}", body, seconds,
                         INGEST_CONNECTIONS[size], workdir)  # fmt: skip
            cores = meter.stop()
            if load.accepted == 0:
                raise RuntimeError(f"the ingest refused every request; see {home / 'logs'}")
            server_us = (server_cpu_s(client) - cpu) / load.accepted * 1e6
            found.append(Ceiling(
                "ingest", shape(size, "request"), "requests", load.rate, size, load.accepted,
                load.seconds, len(body),
                {"p50 ms": load.p50_ms, "p99 ms": load.p99_ms, "refused": load.refused,
                 "connections": INGEST_CONNECTIONS[size], "ingest cores": cores,
                 "redis µs/request": server_us},
            ))  # fmt: skip
            say(f"  {load.rate:,.0f} requests/s, {load.rate * size:,.0f} records/s, "
                f"p99 {load.p99_ms:,.1f} ms, ingest at {cores:.2f} cores, redis-server "
                f"{server_us:,.1f} µs/request")  # fmt: skip
    finally:
        children.stop()
        shutil.rmtree(home / "redis", ignore_errors=True)  # its AOF: hundreds of MB
    return found


def _fill(client: Redis, stream: str, fields: dict[str, Any], entries: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, entries, PIPELINE_DEPTH):
            for _ in range(min(PIPELINE_DEPTH, entries - start)):
                pipe.xadd(stream, fields)
            pipe.execute()


def _drain(
    bench: Any, stream: str, fields: dict[str, Any], entries: int
) -> tuple[float, float, float]:
    """Seconds the pollers took to acknowledge a backlog of `entries` XADDed now, the
    redis-server's CPU seconds meanwhile (the XADDs' included) and the pollers' cores."""
    from streamfn.bench import pipeline

    meters = [CpuMeter(pid) for pid in bench.poller_pids()]
    for meter in meters:
        meter.start()
    cpu = server_cpu_s(bench.redis)
    started = time.perf_counter()
    _fill(bench.redis, stream, fields, entries)
    pipeline.wait_drained(bench.redis)
    elapsed, cpu = time.perf_counter() - started, server_cpu_s(bench.redis) - cpu
    return elapsed, cpu, sum(meter.stop() for meter in meters)


def result_key_bytes(client: Redis) -> int:
    """MEMORY USAGE of one message's result key (0 when there is none)."""
    from streamfn.core.keys import Keys

    for key in client.scan_iter(match=Keys().result("*"), count=1000):
        return int(client.memory_usage(key, samples=0) or 0)
    return 0


def measure_poller(
    workdir: Path, registry: str, records: list[dict[str, Any]], seconds: float,
    sizes: Sequence[int] = SIZES, say: Say = lambda _: None,
) -> list[Ceiling]:  # fmt: skip
    """(d) records/s one poller with infer in process sustains for one model: `streamfn bench`'s
    pipeline stack (redis, moto's S3, ingest, one poller), the model warmed through the ingest,
    then backlogs XADDed straight into the stream, each timed from its first XADD until the
    group has acknowledged all of it, growing until one lasts about `seconds`."""
    from streamfn.bench import pipeline
    from streamfn.core.settings import SEED_MODELS, load_settings

    found = []
    for size in sizes:
        say(f"measuring one poller ({MODEL}, infer in process), {shape(size, 'entry')}: "
            "starting the stack …")  # fmt: skip
        home = workdir / f"poller-{size}"
        with pipeline.pipeline(home, registry, 1, 10**9,
                               MODELS=f"{MODEL}={SEED_MODELS[MODEL]}",
                               STREAM_PARTITIONS="1") as bench:  # fmt: skip
            stream = load_settings(**bench.env).STREAM_KEY
            pipeline.wait_accepting(bench.ingest_url, MODEL, records)
            pipeline.wait_drained(bench.redis)
            fields = entry_fields(records[:size])
            # A small backlog first; then backlogs sized by the last rate until one lasts long
            # enough (the first ones run while the poller's batches are still warming up).
            entries = max(50, 5000 // size)
            for _ in range(POLLER_ATTEMPTS):
                elapsed, cpu, cores = _drain(bench, stream, fields, entries)
                say(f"  {entries:,} entries in {elapsed:.2f} s: "
                    f"{entries * size / elapsed:,.0f} records/s")  # fmt: skip
                if elapsed >= 0.8 * seconds:
                    break
                entries = max(entries + 1, int(entries / elapsed * seconds * 1.1))
            result_bytes = result_key_bytes(bench.redis)
        shutil.rmtree(home / "redis", ignore_errors=True)
        measured = Ceiling(
            "poller", shape(size, "entry") + f", {MODEL}", "entries",
            entries / elapsed, size, entries, elapsed, len(fields["data"]),
            {"poller cores": cores, "result key B": result_bytes,
             "redis µs/entry": cpu / entries * 1e6},
        )  # fmt: skip
        say(f"  {measured.records_per_s:,.0f} records/s ({measured.per_s:,.0f} entries/s); "
            f"poller at {cores:.2f} cores; a result key takes {result_bytes} bytes; redis-server "
            f"{measured.extra['redis µs/entry']:,.1f} µs/entry")  # fmt: skip
        found.append(measured)
    return found
