"""The designs streamfn is measured against: (c) `mlflow models serve`, (d) the seed's worker."""

from __future__ import annotations

import csv
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streamfn import stack
from streamfn.bench import Measurement
from streamfn.bench.load import drive
from streamfn.constants import REGISTERED_MODELS
from streamfn.features import FEATURE_NAMES

SEED_STREAM = "seed_stream"
SEED_GROUP = "workers"


@contextmanager
def mlflow_serve(workdir: Path, registry: str, model: str) -> Iterator[str]:
    """`mlflow models serve` of the model's champion on a free port; its base URL."""
    port = stack.free_port()
    uri = f"models:/{REGISTERED_MODELS[model]}@champion"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager",
               "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    # It runs a bare `uvicorn`: this venv's bin/ must be on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    base = f"http://127.0.0.1:{port}"
    service = stack.Service(
        f"mlflow-serve-{model}", command, stack.http_ok(f"{base}/ping"), (port,),
        env={"MLFLOW_TRACKING_URI": registry, "PATH": path}, start_timeout_s=120,
    )  # fmt: skip
    children = stack.Stack(workdir)
    try:
        children.start(service)
        yield base
    finally:
        children.stop()


def serve_body(records: list[dict[str, Any]]) -> bytes:
    """The records as MLflow's scoring protocol wants them (dataframe_split, signature order)."""
    rows = [[record.get(name) for name in FEATURE_NAMES] for record in records]
    return orjson.dumps({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": rows}})


def serve_rate(
    base: str, model: str, records: list[dict[str, Any]], seconds: float, connections: int,
    workdir: Path,
) -> Measurement:  # fmt: skip
    """Records/s of `mlflow models serve` at full load, and its answer times."""
    load = drive(f"{base}/invocations", serve_body(records), seconds, connections, workdir)
    if load.accepted == 0:
        raise RuntimeError(f"mlflow models serve refused every request ({load.refused})")
    return Measurement(
        "mlflow serve", model, len(records), load.rate * len(records), load.p50_ms,
        load.p99_ms, "request → answer", f"{load.refused} refused" if load.refused else "",
    )  # fmt: skip


def seed_worker(
    redis_url: str, registry: str, model: str, record: dict[str, Any], messages: int,
    out: Path,
) -> Measurement:  # fmt: skip
    """The seed's worker: per message, XREADGROUP one, load the model, predict one, append, ack."""
    import mlflow
    from redis import Redis

    from streamfn.models import frame_of

    r = Redis.from_url(redis_url)
    r.delete(SEED_STREAM)
    r.xgroup_create(SEED_STREAM, SEED_GROUP, id="0", mkstream=True)
    data = orjson.dumps([record])
    for _ in range(messages):
        r.xadd(SEED_STREAM, {"model": model, "data": data})
    uri = f"models:/{REGISTERED_MODELS[model]}@champion"
    mlflow.set_tracking_uri(registry)
    durations = []
    started = time.perf_counter()
    with out.open("a", newline="") as csv_file:
        writer = csv.writer(csv_file)
        for _ in range(messages):
            begun = time.perf_counter()
            ((_, entries),) = r.xreadgroup(SEED_GROUP, "seed", {SEED_STREAM: ">"}, count=1)
            entry_id, fields = entries[0]
            loaded = mlflow.pyfunc.load_model(uri)  # every message, as the seed did
            records = orjson.loads(fields[b"data"])
            prediction = int(loaded.predict(frame_of(records))[0])
            writer.writerow([entry_id.decode(), model, prediction, *records[0].values()])
            csv_file.flush()
            r.xack(SEED_STREAM, SEED_GROUP, entry_id)
            durations.append((time.perf_counter() - begun) * 1000)
    rate = messages / (time.perf_counter() - started)
    return Measurement(
        "seed", model, 1, rate, float(np.percentile(durations, 50)),
        float(np.percentile(durations, 99)), "one message", f"{messages} messages",
    )  # fmt: skip
