"""Stream → infer → CSV in S3: records/s and latency p50/p99 per model and batch size.

One in-process poller (this process is the warm infer container) reads from a private
redis-server, predicts with the registry's champion, writes to moto's S3 server (a separate
process, standing in for MinIO) and acknowledges. Messages hold one record each, so BATCH_SIZE is
also the records per predict call.
- throughput: the stream is preloaded, then drained; records/s = records / drain time;
- latency: messages are added at half that rate for a few seconds; latency = acknowledgement
  time - the entry's received_at (the object is written before the acknowledgement).

Run: .venv/bin/python benchmarks/bench_pipeline.py [--registry sqlite:///path/mlflow.db]
Without --registry it trains the models into a temporary SQLite store first (~1 min).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import orjson
import redis

from benchmarks.bench_ingest import process, wait_until
from streamfn import batch, training
from streamfn.config import load_settings
from streamfn.constants import API_NAMES
from streamfn.poller import Poller
from streamfn.stack import free_port

RECORD = {
    "Gender": "Male",
    "Company Type": "Product",
    "WFH Setup Available": "Yes",
    "Designation": 3,
    "Resource Allocation": 6.0,
    "Mental Fatigue Score": 7.1,
    "Work Hours per Week": 52,
    "Sleep Hours": 5.6,
    "Work-Life Balance Score": 2,
    "Manager Support Score": 2,
    "Deadline Pressure Score": 4,
    "Team Size": 12,
    "Recognition Frequency": 1,
}
STREAM = "mlops_stream"


def add(r: redis.Redis, model: str, count: int) -> None:
    data = orjson.dumps([RECORD])
    with r.pipeline(transaction=False) as pipe:
        for _ in range(count):
            now = str(time.time_ns() // 1_000_000)
            pipe.xadd(STREAM, {"model": model, "data": data, "received_at": now})
        pipe.execute()


def measure(
    r: redis.Redis, settings: object, ctx: batch.InferContext, model: str, size: int, seconds: float
) -> tuple[float, float, float]:
    """(records/s, p50 ms, p99 ms) for one model at one batch size."""
    r.flushall()
    acked: list[float] = []

    def invoke(event: dict) -> batch.BatchResponse:
        answer = batch.handle(event, ctx)
        now = time.time() * 1000
        acked.extend(now - int(orjson.loads(x["body"])["received_at"]) for x in event["Records"])
        return answer

    tuned = settings.model_copy(update={"BATCH_SIZE": size, "BATCH_WINDOW_MS": 10})  # type: ignore[attr-defined]
    poller = Poller(tuned, r, invoke, consumer="bench")
    poller.ensure_group()
    preload = 200 if size == 1 else 4000
    add(r, model, preload)
    started = time.perf_counter()
    poller.run(burst=True)
    rate = preload / (time.perf_counter() - started)
    acked.clear()
    stop = threading.Event()
    thread = threading.Thread(target=poller.run)
    thread.start()
    target = rate / 2  # messages/s: half the drain rate
    begun = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - begun) < seconds:
        due = int(target * elapsed) - sent
        if due > 0:
            add(r, model, due)
            sent += due
        stop.wait(0.005)
    wait_until(
        lambda: (
            r.xpending(STREAM, "workers")["pending"] == 0 and not r.xinfo_groups(STREAM)[0]["lag"]
        )
    )
    poller.stopping.set()
    thread.join()
    return rate, float(np.percentile(acked, 50)), float(np.percentile(acked, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="MLflow tracking URI with the models registered")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency phase per config")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    registry = args.registry
    if registry is None:
        registry = f"sqlite:///{work / 'mlflow.db'}"
        print("training into", registry, file=sys.stderr)
        training.train(registry, "champion")
    redis_port, s3_port = free_port(), free_port()
    s3 = f"http://127.0.0.1:{s3_port}"
    creds = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(creds)
    moto_cmd = [sys.executable, "-c", "from moto.server import main; main()", "-p", str(s3_port)]
    redis_cmd = ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
    with process(redis_cmd, {}), process(moto_cmd, {}):
        r = redis.Redis.from_url(f"redis://127.0.0.1:{redis_port}/0")
        wait_until(r.ping)
        client = boto3.client("s3", endpoint_url=s3)
        wait_until(lambda: client.create_bucket(Bucket="predictions"))
        settings = load_settings(
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            MLFLOW_TRACKING_URI=registry,
            AWS_ENDPOINT_URL_S3=s3,
        )
        ctx = batch.build_context(settings)
        print(
            f"{os.cpu_count()} cores, python {sys.version.split()[0]}, one poller in process, "
            "moto S3 server, redis-server\n"
        )
        print("| model | batch size | records/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for model in API_NAMES:
            ctx.models.get(model)  # warm: load once before timing
            for size in (1, 64, 256):
                rate, p50, p99 = measure(r, settings, ctx, model, size, args.seconds)
                print(f"| {model} | {size} | {rate:,.0f} | {p50:.0f} | {p99:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
