"""A Redis Cluster on this machine: masters and replicas of redis-server, joined by redis-cli.

Each node is `redis-server --cluster-enabled yes` with AOF, as the single node of the local stack
is; `redis-cli --cluster create` gives each master its share of the slots and a replica. A node
also listens on its port + 10000 (the cluster bus), which must stay below 65536: node ports are
drawn between 20000 and 45535.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import redis

from streamfn.local.stack import Service, StackError, redis_ok

BUS_OFFSET = 10_000
LOWEST_PORT, HIGHEST_PORT = 20_000, 55_535 - BUS_OFFSET
# How long a silent master stays a master: its replica is promoted a little after this.
NODE_TIMEOUT_MS = 2000
SETTLE_TIMEOUT_S = 30.0


def node(port: int, data: Path) -> Service:
    """One cluster node on 127.0.0.1, its AOF and nodes.conf under data/<port>."""
    home = data / str(port)
    home.mkdir(parents=True, exist_ok=True)
    command = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home),
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    ]  # fmt: skip
    return Service(f"redis-{port}", command, redis_ok(f"redis://127.0.0.1:{port}/0"), (port,))


def free_ports(count: int) -> list[int]:
    """`count` ports nobody listens on, nor on their bus port."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(LOWEST_PORT, HIGHEST_PORT)
        if port not in ports and _free(port) and _free(port + BUS_OFFSET):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def create(ports: list[int], replicas: int = 1) -> None:
    """Join running nodes into one cluster (the first len/(replicas+1) become the masters);
    RuntimeError with redis-cli's words when it refuses."""
    command = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
               "--cluster-replicas", str(replicas), "--cluster-yes"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
        raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")


def ensure(ports: list[int], replicas: int = 1) -> None:
    """Join the nodes unless they are one cluster already (a restart keeps nodes.conf), then
    wait until every node says the cluster is ok; StackError if it does not settle."""
    first = redis.Redis(port=ports[0], socket_timeout=2)
    if int(first.cluster("info")["cluster_known_nodes"]) < len(ports):
        try:
            create(ports, replicas)
        except RuntimeError as error:
            raise StackError(str(error)) from None
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not all(_ok(port) for port in ports):
        if time.monotonic() > deadline:
            raise StackError(f"the cluster on ports {ports} is not ok after {SETTLE_TIMEOUT_S:g}s")
        time.sleep(0.1)  # polling the nodes' own view, with the deadline above


def _ok(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=2).cluster("info")["cluster_state"] == "ok"
    except redis.RedisError:
        return False
