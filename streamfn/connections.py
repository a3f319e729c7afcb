"""Redis clients for every process, with the one timeout policy the pipeline uses.

- A worker (poller, infer) waits up to WORKER_TIMEOUT_S for a reply: longer than the poller's
  blocking read, so an idle read is never taken for an outage.
- Ingest answers an HTTP client: it gives Redis REQUEST_TIMEOUT_S, then answers 503.
- A probe (a status reading, a readiness check) gives up after PROBE_TIMEOUT_S: a reading that
  waits is worse than one that says "unknown".
"""

from __future__ import annotations

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

CONNECT_TIMEOUT_S = 2.0
WORKER_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 2.0
PROBE_TIMEOUT_S = 1.0


def worker_client(url: str) -> Redis:
    """A client for a long-running worker (poller, infer)."""
    return Redis.from_url(
        url, socket_timeout=WORKER_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S
    )


def request_client(url: str) -> AsyncRedis:
    """An asyncio client for the ingest API: a slow Redis becomes a 503, not a hung request."""
    return AsyncRedis.from_url(
        url,
        socket_timeout=REQUEST_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry_on_timeout=False,
    )


def probe_client(url: str) -> Redis:
    """A client for status readings and readiness checks."""
    return Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )


def text(value: bytes | str) -> str:
    """A reply field as text (redis-py gives bytes unless decode_responses is on)."""
    return value.decode() if isinstance(value, bytes) else value
