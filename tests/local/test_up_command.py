"""`streamfn up` as a user runs it: the whole local pipeline, then Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import bucket_rows, s3_client, wait_for
from tests.factories import SEED_EXAMPLE
from tests.fixed_ports import listeners, wait_free

PORTS = (6379, 5001, 9000, 8800, 9101, 9102)
BACKEND_PORTS = {"redis": (), "kinesis": (4566,)}
REGISTERED = {"svm": "SVC", "knn": "Knn_Classifier", "lightgbm": "LightGBM_Classifier"}


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


# `streamfn up` binds its own fixed ports: under pytest-xdist, one test at a time, on one worker.
pytestmark = pytest.mark.xdist_group("fixed-ports")


def clean_env() -> dict[str, str]:
    """The environment without any of the variables `up` chooses itself."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "MLFLOW_"))}


def up_command(home: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "streamfn.cli", "up", "--home", str(home), *options]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the stack runs in, its home `.streamfn/` in it, for both backends' runs: the
    first `up` trains the models into its MLflow store (a minute), the second finds them there
    (`train --if-missing`), as a user's second `streamfn up` does."""
    return tmp_path_factory.mktemp("up-folder")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "kinesis"])
def test_up_runs_the_pipeline_and_stops_cleanly(tmp_path: Path, folder: Path, backend: str) -> None:
    wait_free((*PORTS, *BACKEND_PORTS[backend]))  # `streamfn up` needs them
    home = folder / ".streamfn"
    log_path = tmp_path / "up.log"
    log = log_path.open("wb")
    up = subprocess.Popen(
        up_command(home, "--pollers", "2", "--rate", "20", "--backend", backend),
        cwd=folder, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: b"up:" in log_path.read_bytes(), timeout=240, interval=1)
        children = children_of(up.pid)
        # redis, mlflow, s3, ingest, two pollers, the producer (and moto's server for Kinesis)
        assert len(children) == 7 + (backend != "redis")
        env = dict(line.split("=", 1) for line in (home / "env").read_text().splitlines())
        assert env["STREAM_BACKEND"] == backend
        assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
        sent = {}
        for model in ("svm", "knn", "lightgbm"):
            answer = httpx.post(
                f"http://127.0.0.1:8800/predict_stream?model={model}", json=SEED_EXAMPLE
            )
            assert answer.status_code == 202
            sent[answer.json()["message_id"]] = model
            url = f"http://127.0.0.1:8800{answer.json()['status_url']}"
            done = wait_for(
                lambda url=url: (s := httpx.get(url).json())["status"] == "done" and s, timeout=60
            )
            assert done["model"] == model
            assert done["model_version"] == "1"
        if backend == "kinesis":  # the seed's three requests went through Kinesis
            assert all(i.startswith("shardId-") for i in sent)
        ours = [r for r in bucket_rows(s3_client(env["AWS_ENDPOINT_URL_S3"])) if r["message_id"]
                in sent]  # fmt: skip
        assert sorted(r["message_id"] for r in ours) == sorted(sent)  # one row per request
        for row in ours:
            assert row["model"] == sent[row["message_id"]]
            assert row["registered_model"] == REGISTERED[row["model"]]
            assert row["model_version"] == "1"
            assert row["prediction"] in {"0", "1", "2"}
        # The producer's records flow too, and the status line counts them.
        wait_for(lambda: b"status: ingested=" in log_path.read_bytes(), timeout=30, interval=1)
        metrics = httpx.get("http://127.0.0.1:8800/metrics").text
        assert 'streamfn_ingest_records_total{model="svm"}' in metrics
        # A command in another shell of the same folder, without the stack's variables, reads
        # them from .streamfn/env and says so.
        listed = subprocess.run(
            [sys.executable, "-m", "streamfn.cli", "results", "--rows", "1"],
            cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "from .streamfn/env (written by `streamfn up`)" in listed.stderr
        assert "prediction objects in s3://" in listed.stdout
        # The console's address is printed (and nothing is opened), and it answers.
        assert b"console: http://127.0.0.1:8800/ui" in log_path.read_bytes()
        assert httpx.get("http://127.0.0.1:8800/ui/api/status").json()["processed"] >= 3
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=90)
        log.close()
    assert code == 0, log_path.read_text()[-3000:]
    assert not [pid for pid in children if alive(pid)]
    # Its children's children (MLflow's workers) may take a moment after it: a few seconds'
    # grace, then the failure names whoever still listens.
    wait_free((*PORTS, *BACKEND_PORTS[backend]), timeout=15)
    assert not (home / "env").exists()  # no command is pointed at the stopped stack
    producer_log = (home / "logs" / "producer.log").read_text()
    assert '"message":"producer finished"' in producer_log
    assert '"undelivered":0' in producer_log.rsplit("producer finished", 1)[1]


def test_a_busy_port_stops_up_at_once_saying_which(tmp_path: Path) -> None:
    wait_free(PORTS)  # `up` is to find 8800 taken by this test, and the others free
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 8800))
        squatter.listen()
        done = subprocess.run(
            up_command(tmp_path / "home"), env=clean_env(), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 3  # a configuration error: the machine lacks a free port
    assert "ingest :8800" in done.stderr
    assert "starting" not in done.stderr


def test_no_redis_server_stops_up_at_once_saying_how_to_install_it(tmp_path: Path) -> None:
    env = {**clean_env(), "PATH": str(tmp_path)}  # a PATH without redis-server
    done = subprocess.run(
        up_command(tmp_path / "home"), env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3  # a configuration error: the machine lacks redis-server
    assert "redis-server is not on PATH" in done.stderr
    assert "apt-get install -y redis-server" in done.stderr


@pytest.mark.slow
# In three fresh-clone CI runs (never on a developer's machine) a redis-server held :6379 when this
# test's `up` checked its ports, a second after wait_free found the port free; who starts it is not
# known yet (the failure now names the listeners). Skipped where CI=true until that is found.
@pytest.mark.skipif(os.environ.get("CI") == "true", reason="a foreign redis on :6379 under CI")
def test_up_stops_its_children_when_its_output_pipe_is_gone(tmp_path: Path) -> None:
    # `streamfn up 2>&1 | tee up.log`, then Ctrl-C: tee dies first, so every later print fails.
    wait_free(PORTS)  # `streamfn up` needs them
    up = subprocess.Popen(
        up_command(tmp_path / ".streamfn", "--no-producer"),
        cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert up.stderr is not None  # where `up` writes what it says
    try:
        said = []
        for line in up.stderr:
            said.append(line.decode(errors="replace"))
            if line.startswith(b"status:"):  # up and watching
                break
        children = children_of(up.pid)
        # redis, mlflow, s3, ingest, a poller
        assert len(children) == 5, f"{''.join(said[-30:])}listening: {listeners(PORTS)}"
        up.stderr.close()
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
    wait_for(lambda: not [pid for pid in children if alive(pid)], timeout=30)
    wait_free(PORTS, timeout=15)
