"""(b) The whole pipeline over HTTP, and ingest alone against a bare endpoint.

A private stack on free ports: redis-server (AOF everysec, as `streamfn up` runs it), moto's S3
server (standing in for MinIO), one ingest worker and the pollers, each a `streamfn` process.
Throughput is sustained end to end: wrk posts as fast as the ingest takes requests for a while,
then the stream drains; records/s = accepted records / (load + drain time), so the slowest
stage bounds it. Latency is measured at half that rate, from each message's acceptance (its
received_at, the stream id's time) to its CSV object written (`written_at` in its result).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from redis import Redis
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from streamfn.bench import CurvePoint, Measurement
from streamfn.bench.load import drive
from streamfn.core import connections, metrics
from streamfn.core.connections import text
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings, load_settings
from streamfn.local import services, stack
from streamfn.local.status import scrape
from streamfn.sink.bucket import Bucket

# Records per call of the in-process floor, and per request through the pipeline.
FLOOR_SIZES = (1, 100, 1000)
REQUEST_SIZES = (1, 100)
# wrk connections per records/request: enough in flight to keep one ingest worker busy.
CONNECTIONS = {1: 32, 100: 8}
# The ingest refuses (503) past this lag; sized so a backlog drains in seconds, not minutes.
MAX_LAG = {1: 5000, 100: 500}
# Where nothing consumes (the ingest measured alone), back-pressure is lifted for the run, in
# entries and in bytes: else the stream's MAX_LAG_BYTES (256 MiB) is what gets measured.
NO_BACKPRESSURE = {"MAX_LAG": str(10**9), "MAX_LAG_BYTES": str(2**50)}
DRAIN_TIMEOUT_S = 300.0
# An alias no version has: no shadow scoring, unless a measurement asks for the challenger.
NO_CHALLENGER = "bench-no-challenger"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class PipelineStack:
    """The running processes of one benchmark pipeline and how to reach them."""

    children: stack.Stack
    env: dict[str, str]
    redis: Redis
    ingest_url: str
    poller_metrics: list[str]

    @property
    def settings(self) -> Settings:
        """The settings the stack's processes run with."""
        return load_settings(**self.env)

    def poller_pids(self) -> list[int]:
        """The PIDs of the poller processes."""
        return [p.pid for p in self.children.running if p.name.startswith("poller")]

    def ingest_pid(self) -> int:
        """The PID of the ingest process."""
        return next(p.pid for p in self.children.running if p.name == "ingest")


@contextmanager
def pipeline(
    workdir: Path, registry: str, pollers: int, max_lag: int, **extra: str
) -> Iterator[PipelineStack]:
    """Start the benchmark pipeline (`extra`: more variables); stop every process on exit."""
    redis_port, s3_port, ingest_port = stack.free_port(), stack.free_port(), stack.free_port()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "MLFLOW_TRACKING_URI": registry,
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
        "MAX_LAG": str(max_lag),
        "CHALLENGER_ALIAS": NO_CHALLENGER,
        **CREDENTIALS,
        **extra,
    }
    children = stack.Stack(workdir)
    ports = [stack.free_port() for _ in range(pollers)]
    to_start = [
        services.redis(redis_port, workdir / "redis"),
        services.moto_s3(s3_port),
        services.ingest(ingest_port, env),
        *(services.poller(f"poller-{i}", f"bench-{i}", port, env) for i, port in enumerate(ports)),
    ]
    metrics_urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    try:
        for service in to_start:
            children.start(service)
            if service.name == "s3":
                Bucket.from_settings(load_settings(**env)).ensure()
        client = connections.worker_client(env["REDIS_URL"])
        ingest_url = f"http://127.0.0.1:{ingest_port}"
        yield PipelineStack(children, env, client, ingest_url, metrics_urls)
    finally:
        children.stop()


def body(records: list[dict[str, Any]]) -> bytes:
    """A request body holding these records."""
    return orjson.dumps({"data": records})


def drained(r: Redis, settings: Settings | None = None) -> bool:
    """Whether every entry has been read and acknowledged: the group has delivered the stream's
    newest entry and holds none pending. (Not Redis's `lag`, which an AOF reload can leave
    overstated for good: redis/redis#10569.)"""
    settings = settings or load_settings()
    group = settings.CONSUMER_GROUP
    for stream in settings.streams:  # every partition
        groups = [g for g in r.xinfo_groups(stream) if text(g["name"]) == group]
        newest = r.xinfo_stream(stream)["last-generated-id"]
        if not groups or groups[0]["pending"] or groups[0]["last-delivered-id"] != newest:
            return False
    return True


def wait_drained(
    r: Redis, timeout: float = DRAIN_TIMEOUT_S, settings: Settings | None = None
) -> None:
    """Block until the stream is drained, or raise after `timeout` seconds."""
    waiting = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.05),
        retry=retry_if_result(lambda d: not d),
    )
    try:
        waiting(drained, r, settings)
    except RetryError:
        raise RuntimeError(f"the stream did not drain within {timeout:.0f}s") from None


def warm_up(bench: PipelineStack, model: str, records: list[dict[str, Any]], workdir: Path) -> None:
    """Load the model in every poller before anything is timed (a cold start is not the rate)."""
    drive(f"{bench.ingest_url}/predict_stream?model={model}", body(records[:1]), 2, 4, workdir)
    wait_drained(bench.redis, settings=bench.settings)


def throughput(
    bench: PipelineStack, model: str, records: list[dict[str, Any]], seconds: float,
    connections: int, workdir: Path,
) -> float:  # fmt: skip
    """Records/s sustained end to end: accepted records / (load time + drain time)."""
    started = time.perf_counter()
    load = drive(
        f"{bench.ingest_url}/predict_stream?model={model}", body(records), seconds, connections,
        workdir,
    )  # fmt: skip
    wait_drained(bench.redis, settings=bench.settings)
    return load.accepted * len(records) / (time.perf_counter() - started)


def latencies_since(r: Redis, since_ms: int) -> list[float]:
    """Acceptance-to-object milliseconds of every message accepted since `since_ms`."""
    keys = []
    for key in r.scan_iter(match=Keys().result("*"), count=5000):
        message_id = key.decode().removeprefix(Keys().result(""))
        if int(message_id.split("-", 1)[0]) >= since_ms:
            keys.append(key)
    found: list[float] = []
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        for key, raw in zip(chunk, r.mget(chunk), strict=True):
            written = orjson.loads(raw).get("written_at") if raw else None
            if written is not None:
                received = int(key.decode().removeprefix(Keys().result("")).split("-", 1)[0])
                found.append(written - received)
    return found


def latency_at(
    bench: PipelineStack, model: str, records: list[dict[str, Any]], requests_per_s: float,
    seconds: float, connections: int, workdir: Path,
) -> CurvePoint:  # fmt: skip
    """p50 and p99 of acceptance → row in S3 with wrk offering `requests_per_s`."""
    since_ms = time.time_ns() // 1_000_000
    load = drive(
        f"{bench.ingest_url}/predict_stream?model={model}", body(records), seconds, connections,
        workdir, rate=requests_per_s,
    )  # fmt: skip
    wait_drained(bench.redis, settings=bench.settings)
    found = np.asarray(latencies_since(bench.redis, since_ms))
    if found.size == 0:
        raise RuntimeError(f"no message was written at {requests_per_s:g} requests/s")
    return CurvePoint(
        model, len(records), requests_per_s, load.accepted / load.seconds,
        float(np.percentile(found, 50)), float(np.percentile(found, 99)), int(found.size),
    )  # fmt: skip


def latency(
    bench: PipelineStack, model: str, records: list[dict[str, Any]], rate: float,
    seconds: float, connections: int, workdir: Path,
) -> Measurement:  # fmt: skip
    """Records/s `rate` (the maximum) with the p50/p99 of acceptance → row in S3 at half of it."""
    point = latency_at(
        bench, model, records, rate / 2 / len(records), seconds, connections, workdir
    )
    achieved = point.achieved_per_s * len(records)
    return Measurement(
        "pipeline", model, len(records), rate, point.p50_ms, point.p99_ms,
        "accepted → row in S3",
        f"latency at {achieved:,.0f} records/s ({point.messages:,} messages)",
    )  # fmt: skip


def peak_memory_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def model_loads(metrics_urls: list[str]) -> dict[str, dict[tuple[str, str], int]]:
    """Per poller, how many times each (model, version) was loaded."""
    loads: dict[str, dict[tuple[str, str], int]] = {}
    for url in metrics_urls:
        scraped = scrape(url) or {}
        loads[url] = {
            (labels["model"], labels["version"]): int(value)
            for labels, value in scraped.get(metrics.sample_name(metrics.MODEL_LOADS), [])
        }
    return loads


@contextmanager
def running(workdir: Path, services: list[stack.Service]) -> Iterator[None]:
    """Start services in order; stop them all on exit."""
    children = stack.Stack(workdir)
    try:
        for service in services:
            children.start(service)
        yield
    finally:
        children.stop()


@contextmanager
def redis_only(workdir: Path) -> Iterator[str]:
    """A private redis-server; its URL."""
    port = stack.free_port()
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    with running(workdir, [services.redis(port, workdir / "redis")]):
        yield env["REDIS_URL"]


@contextmanager
def ingest_only(workdir: Path, registry: str, app: str | None) -> Iterator[str]:
    """redis-server and one ingest worker (or the bare app), nothing consuming; its base URL.
    The ingest reads its models' schemas from `registry`."""
    redis_port, port = stack.free_port(), stack.free_port()
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", **NO_BACKPRESSURE,
           "MLFLOW_TRACKING_URI": registry}  # fmt: skip
    with running(
        workdir, [services.redis(redis_port, workdir / "redis"), services.ingest(port, env, app)]
    ):
        yield f"http://127.0.0.1:{port}"


def wait_accepting(url: str, model: str, records: list[dict[str, Any]]) -> None:
    """Block until the ingest accepts a request for `model` (its schema read from the registry:
    a first read that imports mlflow for a sqlite registry takes seconds, not a rate)."""
    refused = retry_if_result(lambda code: code != 202)
    waiting = Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.1),
                       retry=refused | retry_if_exception_type(httpx.TransportError))  # fmt: skip
    target = f"{url}/predict_stream?model={model}"
    headers = {"content-type": "application/json"}
    try:
        waiting(lambda: httpx.post(target, content=body(records[:1]), headers=headers).status_code)
    except RetryError:
        raise RuntimeError(f"the ingest at {url} did not accept {model} within 60s") from None


def ingest_rate(
    url: str, design: str, model: str, records: list[dict[str, Any]], seconds: float,
    connections: int, workdir: Path,
) -> Measurement:  # fmt: skip
    """Records/s one ingest worker accepts at full load for a model, and its answer times."""
    target = f"{url}/predict_stream?model={model}"
    load = drive(target, body(records), seconds, connections, workdir)
    if load.rate == 0:
        raise RuntimeError(f"{design}: every request was refused ({load.refused}); see its log")
    return Measurement(
        design, "any", len(records), load.rate * len(records), load.p50_ms, load.p99_ms,
        "request → answer", f"{load.refused} refused",
    )  # fmt: skip
