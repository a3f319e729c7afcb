"""Ingest throughput over HTTP: requests/s and records/s at 1 and 100 records per request.

Starts a private redis-server and one uvicorn worker serving the ingest app (and, for scale,
a bare FastAPI endpoint that only XADDs), then drives each from a second process with wrk.

Run: .venv/bin/python benchmarks/bench_ingest.py [--seconds 10] [--connections 32]
Needs redis-server and wrk on PATH (Debian: apt-get install -y redis-server wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import redis

from streamfn.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
RECORD = {
    "Employee ID": "fffe32003000360033003200",
    "Gender": "Female",
    "Company Type": "Service",
    "WFH Setup Available": "No",
    "Designation": 2,
    "Resource_Allocation": 3.0,
    "mental fatigue score": 3.8,
    "Work Hours per Week": 40,
    "Sleep_Hours": 7.2,
    "Work-Life Balance Score": 4,
    "Manager Support Score": 4,
    "Deadline Pressure Score": 2,
    "Team Size": 9,
    "Recognition Frequency": 3,
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""


def wait_until(check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # not ready yet, whatever the client says
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready after {seconds}s: {check}")


@contextmanager
def process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.terminate()
        child.wait(timeout=15)


def wrk(url: str, body: bytes, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    """Drive url with wrk; return requests/s and the count of non-2xx answers."""
    body_path = workdir / "body.json"
    body_path.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=body_path))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "non_2xx": float(bad.group(1)) if bad else 0.0}


def serve(app: str, port: int, env: dict[str, str], factory: bool) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log", "--workers", "1"] + (["--factory"] if factory else [])
    return command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("redis-server", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH: apt-get install -y {tool}")
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    redis_port, app_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    # No consumer runs here, so lift the back-pressure limit for the length of the run.
    env = {"REDIS_URL": redis_url, "MAX_LAG": str(10**9), "PYTHONPATH": str(ROOT)}
    redis_cmd = ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
    apps = {
        "streamfn ingest (full validation)": ("streamfn.api:create_app", True),
        "bare FastAPI + XADD of the raw body (no parsing)": ("benchmarks.bare_app:app", False),
    }
    print(
        f"{os.cpu_count()} cores, python {sys.version.split()[0]}, wrk -c{args.connections}, "
        f"{args.seconds}s per run, one uvicorn worker\n"
    )
    print("| endpoint | records/request | requests/s | records/s | non-2xx |")
    print("|---|---:|---:|---:|---:|")
    base = f"http://127.0.0.1:{app_port}"
    with process(redis_cmd, {}):
        wait_until(redis.Redis.from_url(redis_url).ping)
        for label, (app, factory) in apps.items():
            with process(serve(app, app_port, env, factory), env):
                wait_until(lambda: httpx.get(f"{base}/docs").status_code == 200)
                for size in (1, 100):
                    body = orjson.dumps({"data": [RECORD] * size})
                    result = wrk(
                        f"{base}/predict_stream?model=svm",
                        body,
                        args.seconds,
                        args.connections,
                        work,
                    )
                    print(
                        f"| {label} | {size} | {result['rps']:,.0f} | "
                        f"{result['rps'] * size:,.0f} | {result['non_2xx']:.0f} |",
                        flush=True,
                    )
                    redis.Redis.from_url(redis_url).flushall()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
