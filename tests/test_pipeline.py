"""End to end with real processes: two `streamfn poll` children, one SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import rows_in, s3_client, wait_for
from tests.factories import full_record

pytestmark = pytest.mark.slow
STREAM = "mlops_stream"


def start_poller(env: dict[str, str], log: Path, name: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamfn.cli", "poll", "--consumer", name]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_two_pollers_one_killed_every_record_exactly_once(
    redis_url: str, sqlite_registry: str, s3_server: str, tmp_path: Path
) -> None:
    client = s3_client(s3_server)
    client.create_bucket(Bucket="predictions")
    env = {
        **os.environ, "REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": sqlite_registry,
        "AWS_ENDPOINT_URL_S3": s3_server, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "CLAIM_IDLE_MS": "2000", "BATCH_SIZE": "20", "BATCH_WINDOW_MS": "20",
    }  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    r.xgroup_create(STREAM, "workers", id="0", mkstream=True)
    log = tmp_path / "pollers.log"
    pollers = [start_poller(env, log, "a"), start_poller(env, log, "b")]
    models = ("svm", "knn", "lightgbm")
    records = [full_record(**{"Employee ID": f"e{i}", "Sleep Hours": 4 + i % 5}) for i in range(10)]
    for i in range(200):  # 200 messages x 10 records
        r.xadd(STREAM, {"model": models[i % 3], "data": orjson.dumps(records), "received_at": "1"})
    try:
        # Kill poller a as soon as it is busy: it dies holding entries it has not acknowledged.
        wait_for(
            lambda: r.xpending_range(STREAM, "workers", "-", "+", 1, consumername="a"), timeout=60
        )
        pollers[0].send_signal(signal.SIGKILL)
        pollers[0].wait(timeout=10)
        pollers.append(start_poller(env, log, "a-restarted"))
        wait_for(
            lambda: (
                sum(rows_in(client).values()) >= 2000
                and r.xpending(STREAM, "workers")["pending"] == 0
            ),
            timeout=120,
            interval=0.5,
        )
        seen = rows_in(client)
        assert len(seen) == 2000
        assert max(seen.values()) == 1, [k for k, n in seen.items() if n > 1][:5]
        assert r.xlen(f"{STREAM}:dlq") == 0
    finally:
        for poller in pollers[1:]:
            poller.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in pollers[1:]]
    assert codes == [0, 0], log.read_text()[-3000:]
