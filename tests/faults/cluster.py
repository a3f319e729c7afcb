"""The fault suite's pipeline on a real Redis Cluster: 3 masters and 3 replicas of redis-server
joined by `redis-cli --cluster create`, the stream in STREAM_PARTITIONS partitions, every child
with REDIS_CLUSTER=true. Drain and dead letters are read over every partition."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from streamfn.core.keys import dlq_key
from streamfn.core.settings import load_settings
from streamfn.local import cluster
from tests.faults.parts import MotoS3, Registry
from tests.faults.pipeline import GROUP, Pipeline

MASTERS, REPLICAS = 3, 3


class ClusterPipeline(Pipeline):
    """A Pipeline whose Redis is a six-node cluster."""

    def __init__(self, tmp_path: Path, registry: Registry, s3: MotoS3, partitions: int) -> None:
        super().__init__(tmp_path, registry, s3)
        self.ports = cluster.free_ports(MASTERS + REPLICAS)
        self.env.update({
            "REDIS_URL": f"redis://127.0.0.1:{self.ports[0]}/0",
            "REDIS_CLUSTER": "true",
            "STREAM_PARTITIONS": str(partitions),
        })  # fmt: skip
        self.streams = load_settings(**self.env).streams
        self.killed: set[int] = set()

    def boot(self) -> None:
        """Start the nodes, join them, and create the group on every partition."""
        if shutil.which("redis-cli") is None:
            pytest.fail("redis-cli is not on PATH: apt-get install -y redis-server")
        for port in self.ports:
            self.spawn(f"redis-{port}", cluster.node(port, self.redis_dir).command)
        for port in self.ports:
            plain = redis.Redis(port=port, socket_timeout=5)
            self.wait(plain.ping, 30, f"node {port} answers PING")
        cluster.create(self.ports)
        self.wait(self.settled, 30, "every node sees the cluster ok")
        self.wait(self.replicated, 30, "every master has its replica in sync")
        self.r = RedisCluster(  # type: ignore[assignment]
            host="127.0.0.1", port=self.ports[0], decode_responses=True, socket_timeout=5
        )
        for stream in self.streams:
            self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)

    def settled(self) -> bool:
        """Every live node says cluster_state:ok (every slot served)."""
        for port in set(self.ports) - self.killed:
            info = redis.Redis(port=port, socket_timeout=2).cluster("info")
            if info["cluster_state"] != "ok":
                return False
        return True

    def replicated(self) -> bool:
        """Every master has an online replica (the first sync done)."""
        for port in self.ports:
            info = redis.Redis(port=port, socket_timeout=2).info("replication")
            if info["role"] == "master" and info.get("slave0", {}).get("state") != "online":
                return False
        return True

    def master_of(self, stream: str) -> int:
        """The port of the master holding a stream's slot, as the live nodes see it."""
        slot = self.r.keyslot(stream)
        port = next(p for p in self.ports if p not in self.killed)
        for start, end, master, *_ in redis.Redis(port=port).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")

    def kill_master(self, stream: str) -> int:
        """SIGKILL the master of a stream's slot; wait until its replica serves the slot."""
        port = self.master_of(stream)
        self.children[f"redis-{port}"].kill()
        self.killed.add(port)
        self.wait(lambda: self.settled() and self.master_of(stream) != port, 60, "failover")
        self.r = RedisCluster(  # type: ignore[assignment]
            host="127.0.0.1",
            port=next(p for p in self.ports if p not in self.killed),
            decode_responses=True,
            socket_timeout=5,
        )
        return port

    def restart_node(self, port: int) -> None:
        """Start a killed node again (its AOF and nodes.conf kept): it rejoins as a replica of
        the master that took its place; wait until that replica is in sync."""
        self.spawn(f"redis-{port}", cluster.node(port, self.redis_dir).command)
        self.killed.discard(port)
        self.wait(self.settled, 60, f"node {port} back in the cluster")
        self.wait(self.replicated, 60, "every master has its replica in sync again")

    def pending(self, consumer: str | None = None) -> int:
        """Entries read but not acknowledged, over the partitions: by the group, or one
        consumer."""
        if consumer is None:
            return sum(int(self.r.xpending(s, GROUP)["pending"]) for s in self.streams)
        return sum(len(self.r.xpending_range(s, GROUP, "-", "+", 1000, consumername=consumer))
                   for s in self.streams)  # fmt: skip

    def added(self) -> int:
        """Entries ever added to the partitions."""
        return sum(int(self.r.xinfo_stream(s)["entries-added"]) for s in self.streams)

    def drained(self) -> bool:
        """Every partition's entries delivered to the group and acknowledged."""
        for stream in self.streams:
            last = self.r.xinfo_stream(stream)["last-generated-id"]
            group = next(g for g in self.r.xinfo_groups(stream) if g["name"] == GROUP)
            if group["pending"] or group["last-delivered-id"] != last:
                return False
        return True

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every entry of every partition's dead-letter stream."""
        return [{"id": i, **f} for s in self.streams for i, f in self.r.xrange(dlq_key(s))]
