"""Redis clients for every process, with the one timeout policy the pipeline uses.

- A worker (poller, infer) waits up to WORKER_TIMEOUT_S for a reply: longer than the poller's
  blocking read, so an idle read is never taken for an outage.
- Ingest answers an HTTP client: it gives Redis REQUEST_TIMEOUT_S, then answers 503.
- A probe (a status reading, a readiness check) gives up after PROBE_TIMEOUT_S: a reading that
  waits is worse than one that says "unknown".

With REDIS_CLUSTER=true each is redis-py's cluster client, REDIS_URL naming any node: it learns
the slots and follows MOVED and failovers on its own.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

# What a process talks to Redis through: one node's client or a cluster's (the same commands).
SyncClient: TypeAlias = Redis | RedisCluster
AsyncClient: TypeAlias = AsyncRedis | AsyncRedisCluster

CONNECT_TIMEOUT_S = 2.0
WORKER_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 2.0
PROBE_TIMEOUT_S = 1.0


def _sync(url: str, cluster: bool, **options: Any) -> SyncClient:
    return (RedisCluster if cluster else Redis).from_url(url, **options)


def worker_client(url: str, cluster: bool = False) -> SyncClient:
    """A client for a long-running worker (poller, infer)."""
    return _sync(
        url, cluster, socket_timeout=WORKER_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S
    )


def request_client(url: str, cluster: bool = False) -> AsyncClient:
    """An asyncio client for the ingest API: a slow Redis becomes a 503, not a hung request.

    It never sends a command again by itself: an append that timed out may have been applied,
    and sent again it would be a second entry. The client that gets the 503 decides."""
    options: dict[str, Any] = {
        "socket_timeout": REQUEST_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    if cluster:
        return AsyncRedisCluster.from_url(url, **options)
    return AsyncRedis.from_url(url, retry_on_timeout=False, **options)


def node_client(url: str, host: str, port: int) -> AsyncRedis:
    """A request client of one node of a cluster, REDIS_URL's credentials and options kept."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    netloc = f"{credentials}@{where}" if credentials else where
    client = request_client(urlunsplit(parts._replace(netloc=netloc)))
    assert isinstance(client, AsyncRedis)  # not a cluster's: one node
    return client


def probe_client(url: str, cluster: bool = False) -> SyncClient:
    """A client for status readings and readiness checks."""
    return _sync(
        url, cluster, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )


def text(value: bytes | str) -> str:
    """A reply field as text (redis-py gives bytes unless decode_responses is on)."""
    return value.decode() if isinstance(value, bytes) else value
