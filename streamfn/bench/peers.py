"""The designs streamfn is measured against: (c) `mlflow models serve`, (d) the seed's worker,
(e) MLServer with adaptive batching."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streamfn.bench import Measurement
from streamfn.bench.load import drive
from streamfn.core.settings import SEED_MODELS
from streamfn.local import stack
from streamfn.models.seed import FEATURE_NAMES, NUMERIC

SEED_STREAM = "seed_stream"
SEED_GROUP = "workers"


@contextmanager
def mlflow_serve(workdir: Path, registry: str, model: str) -> Iterator[str]:
    """`mlflow models serve` of the model's champion on a free port; its base URL."""
    port = stack.free_port()
    uri = f"models:/{SEED_MODELS[model]}@champion"
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

    from streamfn.models.loaded import frame_of
    from streamfn.models.schemas import seed_schema

    r = Redis.from_url(redis_url)
    r.delete(SEED_STREAM)
    r.xgroup_create(SEED_STREAM, SEED_GROUP, id="0", mkstream=True)
    data = orjson.dumps([record])
    for _ in range(messages):
        r.xadd(SEED_STREAM, {"model": model, "data": data})
    uri = f"models:/{SEED_MODELS[model]}@champion"
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
            prediction = int(loaded.predict(frame_of(seed_schema(), records))[0])
            writer.writerow([entry_id.decode(), model, prediction, *records[0].values()])
            csv_file.flush()
            r.xack(SEED_STREAM, SEED_GROUP, entry_id)
            durations.append((time.perf_counter() - begun) * 1000)
    rate = messages / (time.perf_counter() - started)
    return Measurement(
        "seed", model, 1, rate, float(np.percentile(durations, 50)),
        float(np.percentile(durations, 99)), "one message", f"{messages} messages",
    )  # fmt: skip


# (e) MLServer. It pins fastapi below what streamfn uses, so it gets a virtualenv of its own; the
# model libraries there are the versions this process has, so the logged pipeline loads as is.
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-mlflow==1.7.1",
                 # uvloop 0.22 and later break MLServer's parallel workers ("no current event
                 # loop"); one process is measured here, but the pin keeps the venv usable.
                 "uvloop==0.21.0")  # fmt: skip
MODEL_PACKAGES = ("mlflow", "scikit-learn", "lightgbm", "skops", "pandas", "numpy", "scipy",
                  "cloudpickle", "pyarrow")  # fmt: skip
# Adaptive batching as tried for the issue: up to 100 requests merged, waiting at most 5 ms.
MLSERVER_MAX_BATCH_SIZE = 100
MLSERVER_MAX_BATCH_TIME_S = 0.005


def mlserver_requirements() -> list[str]:
    """MLServer's pins, then the model libraries at this process's versions."""
    from importlib import metadata

    pinned = []
    for name in MODEL_PACKAGES:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return [*MLSERVER_PINS, *pinned]


def ensure_mlserver(venv: Path, say: Callable[[str], None]) -> Path:
    """The `mlserver` command of `venv`, creating the virtualenv first if it has none."""
    binary = venv / "bin" / "mlserver"
    if binary.exists():
        return binary
    say(f"(e) creating {venv} for MLServer (once: about a minute and 1 GB) …")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, *mlserver_requirements()], capture_output=True, text=True)
    if done.returncode != 0 or not binary.exists():
        raise RuntimeError(f"installing MLServer in {venv} failed:\n{done.stderr[-2000:]}")
    return binary


@contextmanager
def mlserver(workdir: Path, registry: str, model: str, binary: Path) -> Iterator[str]:
    """MLServer serving the model's champion (a local copy) on free ports; its base URL."""
    import mlflow

    workdir = workdir.resolve()  # MLServer runs from it: every path below must be absolute
    serve = workdir / "serve"
    local = workdir / "model"
    mlflow.set_tracking_uri(registry)
    mlflow.artifacts.download_artifacts(
        f"models:/{SEED_MODELS[model]}@champion", dst_path=str(local)
    )
    port = stack.free_port()
    settings = {"debug": False, "parallel_workers": 0, "host": "127.0.0.1", "http_port": port,
                "grpc_port": stack.free_port(), "metrics_endpoint": None,
                "load_models_at_startup": True}  # fmt: skip
    model_settings = {
        "name": model,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "max_batch_size": MLSERVER_MAX_BATCH_SIZE,
        "max_batch_time": MLSERVER_MAX_BATCH_TIME_S,
        "parameters": {"uri": str(local)},
    }
    (serve / model).mkdir(parents=True, exist_ok=True)
    (serve / "settings.json").write_bytes(orjson.dumps(settings))
    (serve / model / "model-settings.json").write_bytes(orjson.dumps(model_settings))
    base = f"http://127.0.0.1:{port}"
    # It writes .envs/ and .metrics/ into its working directory: the workdir, through cwd.
    command = ["/bin/sh", "-c", f'cd "{workdir}" && exec "{binary}" start "{serve}"']
    service = stack.Service(
        f"mlserver-{model}", command, stack.http_ok(f"{base}/v2/models/{model}/ready"), (port,),
        start_timeout_s=120,
    )  # fmt: skip
    children = stack.Stack(workdir)
    try:
        children.start(service)
        yield base
    finally:
        children.stop()


def mlserver_body(records: list[dict[str, Any]]) -> bytes:
    """The V2 inference request of the records: one input per column, the `pd` content type."""
    inputs = []
    for name in FEATURE_NAMES:
        numeric = name in NUMERIC
        inputs.append({
            "name": name,
            "datatype": "FP64" if numeric else "BYTES",
            "shape": [len(records), 1],
            # JSON null is how V2 sends a missing value (a NaN literal is refused).
            "data": [r.get(name) if not numeric or r.get(name) is None else float(r[name])
                     for r in records],
        })  # fmt: skip
    return orjson.dumps({"inputs": inputs, "parameters": {"content_type": "pd"}})


def mlserver_rate(
    base: str, model: str, records: list[dict[str, Any]], seconds: float, connections: int,
    workdir: Path,
) -> Measurement:  # fmt: skip
    """Records/s of MLServer at full load, and its answer times."""
    url = f"{base}/v2/models/{model}/infer"
    load = drive(url, mlserver_body(records), seconds, connections, workdir)
    if load.accepted == 0:
        raise RuntimeError(f"MLServer refused every request ({load.refused})")
    return Measurement(
        "mlserver", model, len(records), load.rate * len(records), load.p50_ms, load.p99_ms,
        "request → answer", f"{load.refused} refused" if load.refused else "",
    )  # fmt: skip
