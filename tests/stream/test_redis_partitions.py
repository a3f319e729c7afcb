"""Ingest with STREAM_PARTITIONS > 1 against a real redis-server: each request goes to its
employee's partition, and ids are unique across partitions and name their partition."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.settings import Settings
from streamfn.models.seed import EMPLOYEE_ID
from streamfn.stream.partitions import Router, partition_of_id
from tests.conftest import RedisServer, free_port, wait_for
from tests.factories import body, full_record

PARTITIONS = 3


def send(client: TestClient, *records: dict[str, object]) -> str:
    answer = client.post("/predict_stream?model=svm", content=body(*records),
                         headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 202, answer.text
    return str(answer.json()["message_id"])


def test_requests_go_to_their_employees_partition_with_ids_that_name_it(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    settings = make_settings(STREAM_PARTITIONS=PARTITIONS)
    r = redis.Redis.from_url(redis_url)
    sent: dict[str, str] = {}
    with TestClient(create_app(settings)) as client:
        for n in range(60):  # quickly: many land in one millisecond of one partition
            employee = f"EMP{n % 20:03d}"  # each employee three times
            sent[send(client, full_record(**{"Employee ID": employee}))] = employee
        nameless = {k: v for k, v in full_record().items() if k != EMPLOYEE_ID}
        anonymous = [send(client, nameless) for _ in range(PARTITIONS)]
        pending = client.get(f"/predictions/{anonymous[-1]}").json()
    assert len(sent) == 60  # no id given twice, across partitions
    where = {}
    for p, stream in enumerate(settings.streams):
        for entry_id, _ in r.xrange(stream):
            where[entry_id.decode()] = p
    for message_id, employee in sent.items():
        expected = zlib.crc32(employee.encode()) % PARTITIONS
        assert where[message_id] == expected == partition_of_id(message_id, PARTITIONS)
    # Without an Employee ID, requests go round the partitions.
    assert sorted(where[i] for i in anonymous) == list(range(PARTITIONS))
    assert pending["status"] == "pending"
    assert not r.exists("mlops_stream")  # P > 1 never writes the single stream


def test_a_partition_whose_last_id_is_ahead_of_the_clock_still_gets_its_own_ids(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    settings = make_settings(STREAM_PARTITIONS=PARTITIONS)
    r = redis.Redis.from_url(redis_url)
    employee = next(f"E{n}" for n in range(100) if zlib.crc32(f"E{n}".encode()) % 3 == 2)
    stream = settings.streams[2]
    r.xadd(stream, {"model": "svm"}, id="99999999999999-7")  # a clock far ahead, once
    with TestClient(create_app(settings)) as client:
        ids = [send(client, full_record(**{"Employee ID": employee})) for _ in range(3)]
    assert ids == ["99999999999999-8", "99999999999999-11", "99999999999999-14"]


def test_waiting_for_a_replica_the_node_lacks_refuses_before_appending(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    settings = make_settings(INGEST_WAIT_REPLICAS=1)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/predict_stream?model=svm", content=body(full_record()),
                             headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 503
    assert "0 replicas connected, fewer than INGEST_WAIT_REPLICAS=1" in answer.json()["detail"]
    assert answer.headers["retry-after"]
    assert redis.Redis.from_url(redis_url).xlen("mlops_stream") == 0


@pytest.mark.parametrize("partitions", [1, 4])
def test_the_router_keeps_an_employee_on_one_partition(partitions: int) -> None:
    router = Router(partitions)
    chosen = {router.partition([{"Employee ID": "EMP7"}]) for _ in range(10)}
    assert len(chosen) == 1
    assert chosen <= set(range(partitions))
    turns = [router.partition([{}]) for _ in range(2 * partitions)]
    assert turns == [n % partitions for n in range(2 * partitions)]


def test_a_202_waits_for_the_replica_and_none_comes_once_it_is_gone(
    make_settings: Callable[..., Settings], private_redis: RedisServer, tmp_path: Path
) -> None:
    (tmp_path / "replica").mkdir()
    replica_server = RedisServer(free_port(), tmp_path / "replica")
    replica_server.start()
    try:
        _wait_then_refuse(make_settings, private_redis, replica_server)
    finally:
        replica_server.kill()


def _wait_then_refuse(
    make_settings: Callable[..., Settings], private_redis: RedisServer, replica_server: RedisServer
) -> None:
    master = redis.Redis.from_url(private_redis.url)
    replica = redis.Redis.from_url(replica_server.url)
    replica.replicaof("127.0.0.1", private_redis.port)

    def online() -> bool:
        return master.info("replication").get("slave0", {}).get("state") == "online"

    wait_for(online, timeout=20)
    settings = make_settings(REDIS_URL=private_redis.url, INGEST_WAIT_REPLICAS=1)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/predict_stream?model=svm", content=body(full_record()),
                             headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 202, answer.text
        # WAIT confirmed it: the replica has the entry when the 202 is sent, not later.
        assert replica.xlen("mlops_stream") == 1
        replica_server.kill()
        wait_for(lambda: master.info("replication")["connected_slaves"] == 0, timeout=20)
        refused = client.post("/predict_stream?model=svm", content=body(full_record()),
                              headers={"content-type": "application/json"})  # fmt: skip
    assert refused.status_code == 503
    assert "0 replicas connected" in refused.json()["detail"]
    assert master.xlen("mlops_stream") == 1  # refused before anything was appended
