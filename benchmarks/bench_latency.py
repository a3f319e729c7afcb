"""Where the time of one lightly loaded message goes, from acceptance to its object written.

Run: .venv/bin/python -m benchmarks.bench_latency [--rate 20] [--seconds 10] [--model lightgbm]

A private stack (redis-server, moto's S3 server, one ingest worker) as `streamfn bench` starts
it, with the poller and the infer function in this process, so that each message can be timed
at each step: accepted (its received_at) → read by the poller → its model starts predicting →
prediction done → object written (its written_at). wrk sends one record per request at the rate
given. Prints p50 and p90 of each step in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from streamfn.bench import pipeline
from streamfn.bench.load import drive
from streamfn.core import clock, connections
from streamfn.core.keys import Keys
from streamfn.core.settings import SEED_MODELS, load_settings
from streamfn.data import training
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.infer import handler
from streamfn.local import services, stack
from streamfn.poller import invoke
from streamfn.poller.loop import redis_poller
from streamfn.sink.bucket import Bucket

STEPS = ("accepted → read", "read → predicting", "predicting", "predicted → written", "total")


def main() -> None:
    """Time each step of lightly loaded messages; print the percentiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s of one record")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="lightgbm")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="streamfn-latency-"))
    registry = f"sqlite:///{work / 'mlflow.db'}"
    training.train(registry, "champion", (args.model,))
    os.environ["MODELS"] = f"{args.model}={SEED_MODELS[args.model]}"  # warm only this one
    ports = [stack.free_port() for _ in range(3)]
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{ports[0]}/0",
        "MLFLOW_TRACKING_URI": registry,
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{ports[1]}",
        **pipeline.CREDENTIALS,
    }
    children = stack.Stack(work, env={**os.environ, **env})
    marks: dict[str, dict[str, int]] = {}
    try:
        for service in (services.redis(ports[0], work / "redis"), services.moto_s3(ports[1]),
                        services.ingest(ports[2], env)):  # fmt: skip
            children.start(service)
        settings = load_settings(**env)
        Bucket.from_settings(settings).ensure()
        poller = timed_poller(settings, marks)
        threading.Thread(target=poller.run, daemon=True).start()
        url = f"http://127.0.0.1:{ports[2]}/predict_stream?model={args.model}"
        body = orjson.dumps({"data": RecordSampler(load_profile(), 11).records(1)})
        drive(url, body, 2, 1, work, rate=args.rate)  # warm-up, not counted
        time.sleep(1)
        marks.clear()
        drive(url, body, args.seconds, 1, work, rate=args.rate)
        time.sleep(1)
        report(marks, connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER))
        poller.stopping.set()
    finally:
        children.stop()


def timed_poller(settings: Any, marks: dict[str, dict[str, int]]) -> Any:
    """A poller with in-process infer that notes when each message reaches each step."""
    original_predict = handler.predict

    def predict(model: Any, messages: Any, probabilities: bool) -> Any:
        started = clock.now_ms()
        found = original_predict(model, messages, probabilities)
        for m in messages:
            marks.setdefault(m.message_id, {}).update(
                predicting=started, predicted=clock.now_ms(), accepted=m.received_at
            )
        return found

    handler.predict = predict
    client = connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER)
    poller = redis_poller(settings, client, invoke.in_process(settings), "latency")
    read = poller.source.read

    def timed_read(count: int, block_ms: int | None) -> Any:
        entries = read(count, block_ms)
        for entry in entries:
            marks.setdefault(entry.id, {})["read"] = clock.now_ms()
        return entries

    poller.source.read = timed_read  # type: ignore[method-assign]
    return poller


def report(marks: dict[str, dict[str, int]], client: Any) -> None:
    """p50 and p90 of each step, in milliseconds."""
    rows = []
    for message_id, seen in marks.items():
        raw = client.get(Keys().result(message_id))
        written = orjson.loads(raw).get("written_at") if raw else None
        if written is None or "accepted" not in seen or "read" not in seen:
            continue
        rows.append((seen["read"] - seen["accepted"], seen["predicting"] - seen["read"],
                     seen["predicted"] - seen["predicting"], written - seen["predicted"],
                     written - seen["accepted"]))  # fmt: skip
    print(f"{len(rows)} messages")
    for index, step in enumerate(STEPS):
        values = sorted(row[index] for row in rows)
        p90 = values[int(len(values) * 0.9)]
        print(f"{step:<22} p50 {statistics.median(values):6.1f} ms   p90 {p90:6.1f} ms")


if __name__ == "__main__":
    main()
