"""`streamfn bench-ceilings`: what each part of the pipeline does at most on this machine.

Each part alone, on its own throwaway servers (free ports, files under --out):

(a) XADD/s of one redis-server (AOF everysec, as `streamfn up` runs it) from one client, pipelined
    (redis-py, transaction=False), entries shaped as the ingest writes them (model, data as JSON,
    received_at) with 1 and 100 synthetic records each; and the same XADDs from redis-benchmark
    (C, one connection), the server's own ceiling without redis-py's cost per command;
(b) XREADGROUP/s of those entries back, COUNT 256, each round trip also XACKing the entries the
    previous one read;
(c) requests/s of one ingest worker (`streamfn ingest`, one uvicorn worker) under wrk;
(d) records/s one poller (`streamfn poll`, infer in process) sustains for one model: backlogs
    XADDed straight into the stream, timed until the group has acknowledged all of them;
(e) PUTs/s of a ~20 KB CSV to moto's S3 server from one boto3 client, sequential and from 8
    threads.

Beside the rates: the redis-server's CPU (INFO cpu) per entry or request, the ingest's and the
poller's cores, an entry's bytes in Redis and a result key's MEMORY USAGE, for sizing.
(a), (b) and (e) need only redis-server and moto; (c) needs wrk and a registry holding the model's
schema; (d) needs the model itself. The registry is `--registry`, or a SQLite store trained once
under --out (about a minute).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis import Redis

from streamfn.bench.console_cost import CpuMeter
from streamfn.core import connections
from streamfn.data.synth import RecordSampler, load_profile

PARTS = ("xadd", "xreadgroup", "ingest", "poller", "s3")
SIZES = (1, 100)  # records per entry (or per request)
PIPELINE_DEPTH = 1000  # commands per pipeline round trip
PIPELINE_BYTES = 8 * 1024 * 1024  # ... fewer when the entries are large
READ_COUNT = 256  # XREADGROUP COUNT, as the poller reads (BATCH_SIZE)
MAX_STREAM_BYTES = 2 * 1024**3  # stop XADDing a shape once this much data has been sent
S3_THREADS = 8
S3_OBJECT_BYTES = 20 * 1024
MODEL = "lightgbm"
POLLER_ATTEMPTS = 4  # backlogs drained, at most, to find one that lasts about `seconds`
INGEST_CONNECTIONS = {1: 32, 100: 8}  # as `streamfn bench` drives one ingest worker
GROUP = "ceilings"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Ceiling:
    """One measured rate."""

    part: str  # one of PARTS
    shape: str  # what was measured, e.g. "1 record/entry", "8 threads"
    unit: str  # what per_s counts: entries, requests, records, PUTs
    per_s: float
    records_per_unit: int  # records per entry/request (0: not records)
    count: int  # units done
    seconds: float
    bytes_per_unit: int = 0  # payload bytes per unit (the entry's data, the object's body)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        """Records per second (0 when the unit holds no records)."""
        return self.per_s * self.records_per_unit

    @property
    def mb_per_s(self) -> float:
        """Payload megabytes (10^6 bytes) per second."""
        return self.per_s * self.bytes_per_unit / 1e6

    def as_dict(self) -> dict[str, Any]:
        """The fields and the derived rates, for --json."""
        return {**asdict(self), "records_per_s": self.records_per_s, "mb_per_s": self.mb_per_s}


def sample_records(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Synthetic employee records, as the producer sends them."""
    return RecordSampler(load_profile(), seed=seed).records(count)


def entry_fields(records: list[dict[str, Any]], model: str = MODEL) -> dict[str, bytes | str]:
    """A stream entry as the ingest writes it (its `data` is the records' JSON)."""
    return {"model": model, "data": orjson.dumps(records),
            "received_at": str(time.time_ns() // 1_000_000)}  # fmt: skip


def _used_memory(client: Redis) -> int:
    return int(client.info("memory")["used_memory"])


def server_cpu_s(client: Redis) -> float:
    """CPU seconds the redis-server has used so far (user + system, all its threads)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _shape(records: int, per: str) -> str:
    return f"{records} record{'s' if records > 1 else ''}/{per}"


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
    return Ceiling("xadd", _shape(len(records), "entry") + ", redis-benchmark", "entries", rate,
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
    before = _used_memory(client)
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
    per_entry = (_used_memory(client) - before) / count
    return Ceiling("xadd", _shape(len(records), "entry"), "entries", count / elapsed,
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
    return Ceiling("xreadgroup", _shape(records_per_entry, "entry"), "entries", read / elapsed,
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
        say(f"measuring XADD, {_shape(size, 'entry')} …")
        written = measure_xadd(client, stream, records[:size], seconds)
        say(f"  {written.per_s:,.0f} entries/s, {written.records_per_s:,.0f} records/s, "
            f"{written.mb_per_s:,.1f} MB/s, redis-server at "
            f"{written.extra['server cores']:.2f} cores")  # fmt: skip
        if "xadd" in parts:
            found.append(written)
        if "xreadgroup" in parts:
            say(f"measuring XREADGROUP + XACK, {_shape(size, 'entry')} …")
            read = measure_xreadgroup(client, stream, size, seconds)
            say(f"  {read.per_s:,.0f} entries/s, {read.records_per_s:,.0f} records/s, "
                f"redis-server at {read.extra['server cores']:.2f} cores")  # fmt: skip
            found.append(read)
        client.delete(stream)
        if "xadd" in parts and c_client:
            entries = int(
                min(written.per_s * seconds * 3, MAX_STREAM_BYTES / 2 / written.bytes_per_unit)
            )
            say(f"measuring XADD from redis-benchmark (C client), {_shape(size, 'entry')} …")
            server = measure_xadd_c_client(redis_url, stream, records[:size], max(entries, 1000))
            if server is None:
                say("  redis-benchmark is not on PATH: skipped")
            else:
                say(f"  {server.per_s:,.0f} entries/s, {server.records_per_s:,.0f} records/s, "
                    f"{server.mb_per_s:,.1f} MB/s")  # fmt: skip
                found.append(server)
            client.delete(stream)
    return found


def csv_body(target_bytes: int = S3_OBJECT_BYTES) -> tuple[bytes, int]:
    """A CSV of synthetic records of about `target_bytes`; its bytes and rows."""
    records = sample_records(max(1, target_bytes // 60))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), extrasaction="ignore")
    writer.writeheader()
    rows = 0
    for record in records:
        writer.writerow(record)
        rows += 1
        if out.tell() >= target_bytes:
            break
    return out.getvalue().encode(), rows


def measure_s3(
    endpoint: str, seconds: float, threads: Sequence[int] = (1, S3_THREADS),
    say: Say = lambda _: None,
) -> list[Ceiling]:  # fmt: skip
    """(e) PUTs/s of a ~20 KB CSV to the S3 server at `endpoint`, from one client, sequential
    (1 thread) and from a pool of threads."""
    from botocore.config import Config

    from streamfn.core.aws import aws_session
    from streamfn.core.settings import load_settings
    from streamfn.sink.bucket import Bucket

    settings = load_settings(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench",
                             AWS_SECRET_ACCESS_KEY="bench")  # fmt: skip
    session = aws_session(settings)
    client = session.client(
        "s3", endpoint_url=endpoint,
        config=Config(max_pool_connections=max(threads) + 2, signature_version="s3v4",
                      request_checksum_calculation="when_required"),
    )  # fmt: skip
    Bucket(client, settings.PREDICTIONS_BUCKET).ensure()
    body, rows = csv_body()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    found = []
    for pool in threads:
        say(f"measuring S3 PUT of {len(body):,} bytes, {pool} thread(s) …")
        done = [0] * pool
        deadline = time.perf_counter() + seconds

        def put(worker: int, deadline: float = deadline, done: list[int] = done,
                pool: int = pool) -> None:  # fmt: skip
            while time.perf_counter() < deadline:
                key = (f"predictions/model={MODEL}/date={day}/ceilings-{pool}-{worker}-"
                       f"{done[worker]}.csv")  # fmt: skip
                client.put_object(Bucket=settings.PREDICTIONS_BUCKET, Key=key, Body=body,
                                  ContentType="text/csv")  # fmt: skip
                done[worker] += 1

        started = time.perf_counter()
        if pool == 1:
            put(0)
        else:
            with ThreadPoolExecutor(pool) as executor:
                for future in [executor.submit(put, i) for i in range(pool)]:
                    future.result()
        elapsed = time.perf_counter() - started
        shape = "sequential" if pool == 1 else f"{pool} threads"
        found.append(Ceiling("s3", shape, "PUTs", sum(done) / elapsed, 0, sum(done), elapsed,
                             len(body), {"rows/object": rows}))  # fmt: skip
        say(f"  {found[-1].per_s:,.0f} PUTs/s")
    return found


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
    env = {"REDIS_URL": redis_url, "MAX_LAG": str(10**9), "MLFLOW_TRACKING_URI": registry,
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
            say(f"measuring one ingest worker, {_shape(size, 'request')} (wrk) …")
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
                "ingest", _shape(size, "request"), "requests", load.rate, size, load.accepted,
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
        say(f"measuring one poller ({MODEL}, infer in process), {_shape(size, 'entry')}: "
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
            "poller", _shape(size, "entry") + f", {MODEL}", "entries",
            entries / elapsed, size, entries, elapsed, len(fields["data"]),
            {"poller cores": cores, "result key B": result_bytes,
             "redis µs/entry": cpu / entries * 1e6},
        )  # fmt: skip
        say(f"  {measured.records_per_s:,.0f} records/s ({measured.per_s:,.0f} entries/s); "
            f"poller at {cores:.2f} cores; a result key takes {result_bytes} bytes; redis-server "
            f"{measured.extra['redis µs/entry']:,.1f} µs/entry")  # fmt: skip
        found.append(measured)
    return found


def registry_for(out: Path, registry: str | None, say: Say) -> str:
    """`registry`, or a SQLite store under `out` with the model trained into it once."""
    from streamfn.data import training

    uri = registry or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    if training.missing_models(uri, (MODEL,)):
        say(f"training {MODEL} into {uri} (once; about a minute) …")
        training.train(uri, "champion", [MODEL])
    return uri


def measure(
    out: Path, seconds: float, parts: Sequence[str] = PARTS, registry: str | None = None,
    say: Say = lambda _: None,
) -> list[Ceiling]:  # fmt: skip
    """Every part asked for, each on servers of its own under `out`."""
    from streamfn.bench import pipeline
    from streamfn.local import services, stack

    out.mkdir(parents=True, exist_ok=True)
    records = sample_records(max(SIZES))
    found: list[Ceiling] = []
    if {"xadd", "xreadgroup"} & set(parts):
        with pipeline.redis_only(out / "redis") as url:
            found += measure_redis(url, records, seconds, say=say, parts=parts)
        shutil.rmtree(out / "redis" / "redis", ignore_errors=True)  # its AOF: gigabytes
    if "s3" in parts:
        port = stack.free_port()
        with pipeline.running(out / "s3", [services.moto_s3(port)]):
            found += measure_s3(f"http://127.0.0.1:{port}", seconds, say=say)
    if {"ingest", "poller"} & set(parts):
        uri = registry_for(out, registry, say)
        if "ingest" in parts:
            found += measure_ingest(out, uri, records, max(seconds, 1.0), say=say)
        if "poller" in parts:
            found += measure_poller(out, uri, records, seconds, say=say)
    order = {part: i for i, part in enumerate(PARTS)}
    return sorted(found, key=lambda c: order[c.part])


def table_rows(found: Sequence[Ceiling]) -> list[tuple[str, ...]]:
    """The table's rows: part, shape, rate, records/s, MB/s, note."""
    rows = []
    for c in found:
        note = ", ".join(f"{k} {v:,.0f}" if v >= 10 else f"{k} {v:,.2g}"
                         for k, v in c.extra.items())  # fmt: skip
        rows.append((c.part, c.shape, f"{c.per_s:,.0f} {c.unit}/s",
                     f"{c.records_per_s:,.0f}" if c.records_per_unit else "",
                     f"{c.mb_per_s:,.1f}", f"{c.count:,} in {c.seconds:.2f} s", note))  # fmt: skip
    return rows


COLUMNS = ("part", "shape", "rate", "records/s", "MB/s", "measured", "notes")


def markdown(found: Sequence[Ceiling]) -> str:
    """The table as Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(found)]
    return "\n".join(lines)


def as_json(found: Sequence[Ceiling]) -> bytes:
    """Every ceiling as JSON."""
    return orjson.dumps([c.as_dict() for c in found], option=orjson.OPT_INDENT_2)
