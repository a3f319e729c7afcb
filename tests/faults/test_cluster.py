"""The pipeline on a real Redis Cluster (3 masters, 3 replicas), the stream in 6 partitions read
by two pollers: a poller SIGKILLed mid-stream, and a master SIGKILLed while the producer runs,
with and without INGEST_WAIT_REPLICAS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamfn.core import metrics
from streamfn.core.environment import get_settings
from streamfn.models.seed import EMPLOYEE_ID
from tests.faults.cluster import ClusterPipeline
from tests.faults.parts import MotoS3, Registry, metric_samples

pytestmark = [pytest.mark.faults, pytest.mark.slow]

PARTITIONS = 6
CONCURRENCY, BATCH = 4, 10  # the producer's requests in flight, and records per request


@pytest.fixture
def on_cluster(
    tmp_path: Path, registry: Registry, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ClusterPipeline]:
    """A cluster pipeline; this process names keys as its children do (the cluster's root)."""
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    get_settings.cache_clear()
    built = ClusterPipeline(tmp_path, registry, moto_s3, PARTITIONS)
    try:
        built.boot()
        yield built
    finally:
        built.close()
        monkeypatch.delenv("REDIS_CLUSTER")
        get_settings.cache_clear()


def test_poller_sigkill_on_a_cluster_loses_and_repeats_nothing(on_cluster: ClusterPipeline) -> None:
    on_cluster.start("a", "b")
    run = on_cluster.produce(3000, seed=131)
    acked = metrics.sample_name(metrics.POLLER_ENTRIES)
    on_cluster.wait(lambda: on_cluster.poller_total(acked, "a") >= 100, 60, "poller a working")
    on_cluster.kill_poller("a")
    on_cluster.start_pollers("a2")
    on_cluster.finish(run)
    on_cluster.drain()
    tally = on_cluster.tally("cluster_poller_sigkill")
    on_cluster.check(tally)
    # The console reads the counts of every partition, each in its own slot, through the cluster.
    shown = httpx.get(f"{on_cluster.env['INGEST_URL']}/ui/api/status", timeout=10)
    assert shown.status_code == 200, shown.text
    found = shown.json()
    records = len(on_cluster.accepted)
    assert (found["ingested"], found["processed"], found["lag"], found["pending"]) == (
        records, records, 0, 0,
    )  # fmt: skip
    assert sum(found["series"]["ingested"]) == sum(found["series"]["processed"]) == records
    # Every partition took requests, and each employee's rows came from one partition.
    for stream in on_cluster.streams:
        assert int(on_cluster.r.xinfo_stream(stream)["entries-added"]) > 0, stream
    by_employee: dict[str, set[int]] = {}
    for row in on_cluster.rows():
        sequence = int(row["message_id"].split("-")[1])
        by_employee.setdefault(row[EMPLOYEE_ID], set()).add(sequence % PARTITIONS)
    assert all(len(parts) == 1 for parts in by_employee.values())


@pytest.mark.parametrize("replicas", [1, 0], ids=["wait_replicas_1", "no_wait"])
def test_master_sigkill_failover(on_cluster: ClusterPipeline, replicas: int) -> None:
    on_cluster.start("a", "b", INGEST_WAIT_REPLICAS=str(replicas))
    run = on_cluster.produce(3000, seed=141 + replicas, batch=BATCH, rate=600,
                             concurrency=CONCURRENCY)  # fmt: skip
    on_cluster.wait_rows(300, "before the failover")
    killed = on_cluster.kill_master(on_cluster.streams[0])
    # The promoted replica has no replica of its own: with INGEST_WAIT_REPLICAS=1 its
    # partitions answer 503 (the producer retries) until the old master is back as one.
    on_cluster.restart_node(killed)
    on_cluster.finish(run, timeout=180)
    on_cluster.drain(timeout=180)
    tally = on_cluster.tally(f"cluster_master_sigkill_{'wait' if replicas else 'no_wait'}")
    assert killed not in {on_cluster.master_of(s) for s in on_cluster.streams}
    # Rows of records never accepted, or an accepted record neither written nor dead-lettered,
    # would be a loss the ingest's answer hid.
    assert (tally.unexpected, tally.dead_lettered) == (0, 0), on_cluster.explain(tally)
    # A request in flight when its master dies is answered 503 though its entry may live on in
    # the replica; the producer retries it with the same Idempotency-Key, and the replica that
    # took over has the key's record with the entry (one script wrote both): the retry is
    # answered as the first was, or, if neither got there, appended once. Nothing twice.
    assert (tally.duplicated, tally.duplicated_keys) == (0, 0), on_cluster.explain(tally)
    if replicas:  # WAIT: every accepted entry was on the replica that took over
        assert tally.lost == 0, on_cluster.explain(tally)
        # The promoted master had no replica until the old one came back: refused meanwhile.
        refused = metric_samples(
            on_cluster.ingest_port, metrics.sample_name(metrics.INGEST_REJECTIONS)
        )
        assert any(labels["reason"] == "replicas" and value > 0 for labels, value in refused)
