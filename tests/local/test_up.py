"""What `streamfn up` starts, for each choice (the processes themselves run in test_up.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfn.local import up as local


def names(stack: local.LocalStack) -> list[str]:
    return [s.name for s in stack.services]


def test_default_stack_order_and_environment(tmp_path: Path) -> None:
    stack = local.plan(local.Options(tmp_path, pollers=3, rate=50))
    assert names(stack) == ["redis", "mlflow", "s3", "ingest", "poller-1", "poller-2",
                            "poller-3", "producer"]  # fmt: skip
    assert stack.poller_metrics == [f"http://127.0.0.1:{p}/metrics" for p in (9101, 9102, 9103)]
    assert "IN MEMORY" in stack.s3_kind
    assert stack.env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    redis = stack.services[0].command
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert redis[redis.index("--dir") + 1] == str(tmp_path / "redis")
    producer = stack.services[-1].command
    assert producer[producer.index("--rate") + 1] == "50"
    for service in stack.services[3:]:
        assert service.env == stack.env  # ingest, pollers and producer share one configuration


def test_no_producer_and_your_own_s3(tmp_path: Path) -> None:
    stack = local.plan(local.Options(tmp_path, rate=None, s3_endpoint="http://minio.example:9000"))
    assert names(stack) == ["redis", "mlflow", "ingest", "poller-1"]
    assert stack.env["AWS_ENDPOINT_URL_S3"] == "http://minio.example:9000"
    assert "AWS_ACCESS_KEY_ID" not in stack.env  # yours come from your environment


def test_a_minio_binary_on_path_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No MinIO server can run here (not on PyPI, npm or Debian): a stand-in file on PATH shows
    # the command `up` would run.
    binary = tmp_path / "bin" / "minio"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(binary.parent))
    stack = local.plan(local.Options(tmp_path / "home"))
    minio = stack.services[2]
    assert minio.name == "minio"
    assert minio.command == [
        str(binary), "server", str(tmp_path / "home" / "minio"),
        "--address", "127.0.0.1:9000", "--console-address", "127.0.0.1:9001",
    ]  # fmt: skip
    assert minio.ports == (9000, 9001)
    assert minio.env == {"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"}
    assert stack.env["AWS_ACCESS_KEY_ID"] == "minioadmin"
    assert "http://127.0.0.1:9001" in stack.links["MinIO console"]


def test_env_file_lists_what_a_client_needs(tmp_path: Path) -> None:
    stack = local.plan(local.Options(tmp_path))
    local.write_env_file(tmp_path / "env", stack.env)
    lines = (tmp_path / "env").read_text().splitlines()
    assert "REDIS_URL=redis://127.0.0.1:6379/0" in lines
    assert "INGEST_URL=http://127.0.0.1:8800" in lines
    assert "AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000" in lines


@pytest.mark.parametrize("backend", ["kinesis", "sqs"])
def test_kinesis_or_sqs_run_on_a_moto_server_of_their_own(tmp_path: Path, backend: str) -> None:
    stack = local.plan(local.Options(tmp_path, backend=backend))
    assert names(stack) == ["redis", "mlflow", "s3", "aws", "ingest", "poller-1", "producer"]
    assert stack.services[3].ports == (4566,)
    assert stack.env["STREAM_BACKEND"] == backend
    assert stack.env["AWS_ENDPOINT_URL_KINESIS"] == stack.env["AWS_ENDPOINT_URL_SQS"]
    if backend == "kinesis":
        assert stack.env["KINESIS_STREAM"] == "streamfn-requests"
        assert stack.env["ON_FAILURE_QUEUE_URL"].endswith("/streamfn-on-failure")
    else:
        assert stack.env["SQS_QUEUE_URL"] == "http://127.0.0.1:4566/123456789012/streamfn-requests"
    assert "moto" in stack.links[backend.capitalize()]


def test_cluster_runs_six_nodes_in_place_of_the_one_redis(tmp_path: Path) -> None:
    stack = local.plan(local.Options(tmp_path, partitions=6, cluster=True))
    nodes = [f"redis-{port}" for port in local.CLUSTER_PORTS]
    assert names(stack) == [*nodes, "mlflow", "s3", "ingest", "poller-1", "producer"]
    assert [s.ports for s in stack.services[:6]] == [(p,) for p in local.CLUSTER_PORTS]
    assert all(port + 10_000 < 65_536 for port in local.CLUSTER_PORTS)  # the cluster bus
    assert "--cluster-enabled" in stack.services[0].command
    assert stack.env["REDIS_URL"] == "redis://127.0.0.1:7000/0"
    assert (stack.env["REDIS_CLUSTER"], stack.env["STREAM_PARTITIONS"]) == ("true", "6")
    plain = local.plan(local.Options(tmp_path))
    assert (plain.env["REDIS_CLUSTER"], plain.env["STREAM_PARTITIONS"]) == ("false", "1")
