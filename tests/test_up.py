"""`streamfn up` as a user runs it: the whole local pipeline, then Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from streamfn.stack import port_is_free
from tests.conftest import wait_for
from tests.factories import SEED_EXAMPLE

pytestmark = pytest.mark.slow
PORTS = (6379, 5001, 9000, 8800, 9101)


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, read from /proc (no procps needed)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_runs_the_pipeline_and_stops_cleanly(tmp_path: Path) -> None:
    busy = [p for p in PORTS if not port_is_free(p)]
    assert not busy, f"ports {busy} are taken; `streamfn up` needs them"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "MLFLOW_"))}
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "streamfn.cli", "up", "--home", str(tmp_path / ".streamfn")],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(
            lambda: httpx.get("http://127.0.0.1:9101/metrics").status_code == 200,
            timeout=240,
            interval=1,
        )
        children = children_of(up.pid)
        assert len(children) == 5
        for model in ("svm", "knn", "lightgbm"):
            answer = httpx.post(
                f"http://127.0.0.1:8800/predict_stream?model={model}", json=SEED_EXAMPLE
            )
            assert answer.status_code == 202
            url = f"http://127.0.0.1:8800{answer.json()['status_url']}"
            done = wait_for(
                lambda url=url: (s := httpx.get(url).json())["status"] == "done" and s, timeout=60
            )
            assert done["model"] == model
            assert done["model_version"] == "1"
            assert done["predictions"][0] in (0, 1, 2)
            assert done["object"].startswith(f"s3://predictions/predictions/model={model}/date=")
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert not [pid for pid in children if alive(pid)]
    assert all(port_is_free(p) for p in PORTS)
