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

An Idempotency-Key is kept in Redis around the put, since no transaction spans Kinesis or SQS and
Redis: claimed "in progress" before it (SET NX, for IN_PROGRESS_MS, longer than a put can take),
released if the put is refused, and recorded done, with the message id, in the same round trip
as the pending mark. A retry then finds the answer (replayed), another request with the key
(422), or the first still in flight (409, retry). A process that dies between the put and the
record leaves the claim to expire, after which a retry appends again: at least once, not
exactly. With Redis unreachable at the claim, the request is served without the key (logged):
Kinesis and SQS ingest does not come to depend on Redis.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
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
from streamfn.stream.base import (
    Appended,
    EntryTooLargeError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    RefusedError,
    fingerprint,
)
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
# How long an Idempotency-Key stays claimed while its put runs: longer than the client above can
# take (2 attempts of 2 s to connect and 10 s to read, with backoff).
IN_PROGRESS_MS = 30_000
# Let go of a claim only if it is still this request's (compare, then delete).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Claim:
    """An Idempotency-Key held for one request while its put runs."""

    key: str  # the Redis key of the record
    request: str  # the request's fingerprint
    in_progress: str  # the record's value while the put runs


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

    def __init__(self, redis: AsyncClient, keys: Keys, ttl_s: int, idempotency_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self._release = redis.register_script(_RELEASE)

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        """Send one entry; its message id, or raise RefusedError."""
        raise NotImplementedError

    async def append(
        self, model: str, records: list[dict[str, Any]], idempotency: str | None = None
    ) -> Appended:
        """Put one entry, then mark it pending; RefusedError, EntryTooLargeError, or for an
        Idempotency-Key's hash seen before, its first answer (or why not: see above)."""
        received_at = now_ms()
        entry = entry_of(model, records, received_at)
        if len(entry) > self.max_bytes:
            raise EntryTooLargeError(
                f"the request is {len(entry)} bytes as an entry; {self.service} takes "
                f"{self.max_bytes}"
            )
        claim = None
        if idempotency is not None:
            request = fingerprint(model, orjson.dumps(records))
            claim, replayed = await self._claim(self.keys.idempotency(idempotency), request)
            if replayed is not None:
                return replayed
        try:
            message_id = await asyncio.to_thread(self.put, entry, records)
        except RefusedError:
            if claim is not None:  # nothing was put: a retry may try again at once
                await self._let_go(claim)
            raise
        await self._mark(message_id, model, len(records), claim, received_at)
        return Appended(message_id, received_at)

    async def _claim(self, key: str, request: str) -> tuple[Claim | None, Appended | None]:
        """Hold the key for this request (the claim), or the first answer to replay; raise if
        another request has it. (None, None): Redis unreachable, served without the key."""
        held = Claim(key, request, f"p {request} {secrets.token_hex(8)}")
        try:
            if await self.redis.set(key, held.in_progress, nx=True, px=IN_PROGRESS_MS):
                return held, None
            found = await self.redis.get(key)
        except RedisError as error:
            log.warning("Idempotency-Key not kept: Redis unreachable", extra={"error": str(error)})
            return None, None
        state, first, *rest = (found or b"p - -").decode().split()
        if first != request:
            raise IdempotencyKeyReusedError()
        if state != "d":
            raise IdempotencyInProgressError(
                "a request with this Idempotency-Key is being appended now; retry in 1 s"
            )
        return None, Appended(rest[0], int(rest[1]), replayed=True)

    async def _let_go(self, claim: Claim) -> None:
        """Release a claim whose put was refused (if it is still this request's)."""
        try:
            await self._release(keys=[claim.key], args=[claim.in_progress])
        except RedisError as error:  # the claim expires after IN_PROGRESS_MS
            log.warning("Idempotency-Key claim kept", extra={"error": str(error)})

    async def _mark(
        self, message_id: str, model: str, records: int, claim: Claim | None, received_at: int
    ) -> None:
        # NX: the infer function may have recorded the message already.
        pending = orjson.dumps({"status": "pending", "model": model})
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.result(message_id), pending, ex=self.ttl_s, nx=True)
                if claim is not None:  # done: the answer a retry gets
                    done = f"d {claim.request} {message_id} {received_at}"
                    pipe.set(claim.key, done, ex=self.idempotency_ttl_s)
                slot = self.keys.series(series.ACCEPTED, series.slot_of(time.time()))
                pipe.incrby(slot, records).expire(slot, series.SERIES_TTL_S)
                pipe.hincrby(self.keys.totals(), series.ACCEPTED, records)
                await pipe.execute()
        except RedisError as error:
            log.warning("accepted entry not marked pending", extra={
                "message_id": message_id, "error": str(error)})  # fmt: skip
