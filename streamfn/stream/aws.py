"""Kinesis and SQS, the backends Lambda reads by itself: what their writers share, and their
clients.

Each request becomes one entry, the JSON the infer function decodes (model, data, received_at),
sent with PutRecords or SendMessageBatch. The service's throttling is the back-pressure: a 503
with Retry-After, as when the Redis Stream lags. The message id ingest answers is where the infer
function keeps the message's state: the SQS message id, or `<shard id>:<sequence number>` on
Kinesis.

After the put, one Redis round trip marks the message pending (so GET /predictions knows it before
a batch takes it) and counts it for the console. The entry is in the stream by then: if that
round trip fails, the 202 still stands, and the status reads 404 until the message is processed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import orjson
from botocore.config import Config
from botocore.exceptions import ClientError
from redis.exceptions import RedisError

from streamfn.core import series
from streamfn.core.aws import aws_session
from streamfn.core.clock import now_ms
from streamfn.core.connections import AsyncClient
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.stream.base import Appended, EntryTooLargeError, RefusedError
from streamfn.stream.partitions import employee_of

log = logging.getLogger(__name__)

# Throttling is back-pressure, not an outage: the client is told to come back.
_THROTTLED = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException",
    "ThrottlingException", "RequestThrottled", "AWS.SimpleQueueService.RequestThrottled",
})  # fmt: skip
# An answer must come in seconds; one retry, since a 503 tells the client to retry anyway.
_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=10,
                        retries={"mode": "standard", "max_attempts": 2})  # fmt: skip


class ThrottledError(RefusedError):
    """The stream or queue throttled the put: it is at its provisioned rate."""

    reason = "throttled"


class StreamDownError(RefusedError):
    """The stream or queue could not be reached, or refused the put for a reason of its own."""

    reason = "stream_unavailable"


def writer_client(settings: Settings, service: str, endpoint: str | None) -> Any:
    """A boto3 client for ingest's puts (made once per process: it is thread-safe)."""
    session = aws_session(settings)
    return session.client(service, endpoint_url=endpoint, config=_CLIENT_CONFIG)


def entry_of(model: str, records: list[dict[str, Any]], received_at: int) -> bytes:
    """A request as one entry: the JSON the infer function decodes."""
    return orjson.dumps({"model": model, "data": records, "received_at": received_at})


def partition_key(records: list[dict[str, Any]]) -> str:
    """The Employee ID of the first record (the service hashes it: one employee's requests keep
    their order), or a random key where there is none."""
    return employee_of(records) or secrets.token_hex(8)


def refused(service: str, error: Exception) -> RefusedError:
    """The 503 for a failed put: throttled, or the service down."""
    code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
    if code in _THROTTLED:
        return ThrottledError(f"{service} is throttling puts ({code}); retry later")
    return StreamDownError(f"{service} did not take the entry: {error}")


class AwsWriter:
    """What both services' writers do: size check, the put off the event loop, then the
    pending mark. A subclass says its service, its largest entry and how it puts one."""

    service = ""
    max_bytes = 0

    def __init__(self, redis: AsyncClient, keys: Keys, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        """Send one entry; its message id, or raise RefusedError."""
        raise NotImplementedError

    async def append(self, model: str, records: list[dict[str, Any]]) -> Appended:
        """Put one entry, then mark it pending; RefusedError or EntryTooLargeError."""
        received_at = now_ms()
        entry = entry_of(model, records, received_at)
        if len(entry) > self.max_bytes:
            raise EntryTooLargeError(
                f"the request is {len(entry)} bytes as an entry; {self.service} takes "
                f"{self.max_bytes}"
            )
        message_id = await asyncio.to_thread(self.put, entry, records)
        await self._mark(message_id, model, len(records))
        return Appended(message_id, received_at)

    async def _mark(self, message_id: str, model: str, records: int) -> None:
        # NX: the infer function may have recorded the message already.
        pending = orjson.dumps({"status": "pending", "model": model})
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.result(message_id), pending, ex=self.ttl_s, nx=True)
                slot = self.keys.series(series.ACCEPTED, series.slot_of(time.time()))
                pipe.incrby(slot, records).expire(slot, series.SERIES_TTL_S)
                pipe.hincrby(self.keys.totals(), series.ACCEPTED, records)
                await pipe.execute()
        except RedisError as error:
            log.warning("accepted entry not marked pending", extra={
                "message_id": message_id, "error": str(error)})  # fmt: skip
