"""Ingest's writers for Lambda's own event sources: a Kinesis record or an SQS message per request.

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
from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from streamfn.core.aws import aws_session
from streamfn.core.clock import now_ms
from streamfn.core.connections import AsyncClient
from streamfn.core.keys import result_key
from streamfn.core.settings import Settings
from streamfn.ingest.refusals import BodyError
from streamfn.ingest.writer import Appended, RefusedError, Writer
from streamfn.sink import counts as pc
from streamfn.stream.events import kinesis_message_id
from streamfn.stream.partitions import employee_of

log = logging.getLogger(__name__)

# The largest entry each service takes: a Kinesis record's data, an SQS message body.
KINESIS_MAX_BYTES = 1024 * 1024
SQS_MAX_BYTES = 256 * 1024
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


class _MarkedWriter:
    """The part both services share: size check, put off the event loop, then mark pending."""

    service = ""
    max_bytes = 0

    def __init__(self, redis: AsyncClient, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        """Send one entry; its message id, or raise RefusedError."""
        raise NotImplementedError

    async def append(self, model: str, records: list[dict[str, Any]]) -> Appended:
        received_at = now_ms()
        entry = entry_of(model, records, received_at)
        if len(entry) > self.max_bytes:
            msg = (f"the request is {len(entry)} bytes as an entry; {self.service} takes "
                   f"{self.max_bytes}")  # fmt: skip
            raise BodyError(413, [{"loc": ["body"], "msg": msg, "type": "too_large"}])
        message_id = await asyncio.to_thread(self.put, entry, records)
        await self._mark(message_id, model, len(records))
        return Appended(message_id, received_at)

    async def _mark(self, message_id: str, model: str, records: int) -> None:
        # NX: the infer function may have recorded the message already.
        pending = orjson.dumps({"status": "pending", "model": model})
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(result_key(message_id), pending, ex=self.ttl_s, nx=True)
                series = pc.series_key(pc.ACCEPTED, pc.slot_of(time.time()))
                pipe.incrby(series, records).expire(series, pc.SERIES_TTL_S)
                pipe.hincrby(pc.totals_key(), "ingested", records)
                await pipe.execute()
        except RedisError as error:
            log.warning("accepted entry not marked pending", extra={
                "message_id": message_id, "error": str(error)})  # fmt: skip


class KinesisWriter(_MarkedWriter):
    """PutRecords of one record a request, its partition key the Employee ID."""

    service = "Kinesis"
    max_bytes = KINESIS_MAX_BYTES

    def __init__(self, client: Any, stream: str, redis: AsyncClient, ttl_s: int) -> None:
        super().__init__(redis, ttl_s)
        self.client = client
        self.stream = stream

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        try:
            reply = self.client.put_records(
                StreamName=self.stream,
                Records=[{"Data": entry, "PartitionKey": partition_key(records)}],
            )
        except (BotoCoreError, ClientError) as error:
            raise refused(f"Kinesis stream {self.stream!r}", error) from None
        [result] = reply["Records"]
        if "ErrorCode" in result:
            error = ClientError({"Error": {"Code": result["ErrorCode"],
                                           "Message": result.get("ErrorMessage", "")}},
                                "PutRecords")  # fmt: skip
            raise refused(f"Kinesis stream {self.stream!r}", error)
        return kinesis_message_id(result["ShardId"], result["SequenceNumber"])


class SqsWriter(_MarkedWriter):
    """SendMessageBatch of one message a request."""

    service = "SQS"
    max_bytes = SQS_MAX_BYTES

    def __init__(self, client: Any, queue_url: str, redis: AsyncClient, ttl_s: int) -> None:
        super().__init__(redis, ttl_s)
        self.client = client
        self.queue_url = queue_url

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        try:
            reply = self.client.send_message_batch(
                QueueUrl=self.queue_url, Entries=[{"Id": "0", "MessageBody": entry.decode()}]
            )
        except (BotoCoreError, ClientError) as error:
            raise refused(f"SQS queue {self.queue_url}", error) from None
        if reply.get("Failed"):
            [failed] = reply["Failed"]
            error = ClientError({"Error": {"Code": failed.get("Code", ""),
                                           "Message": failed.get("Message", "")}},
                                "SendMessageBatch")  # fmt: skip
            raise refused(f"SQS queue {self.queue_url}", error)
        return str(reply["Successful"][0]["MessageId"])


def aws_client(settings: Settings) -> Any:
    """The boto3 client of the configured backend (made once per process: it is thread-safe)."""
    session = aws_session(settings)
    if settings.STREAM_BACKEND == "kinesis":
        return session.client("kinesis", endpoint_url=settings.AWS_ENDPOINT_URL_KINESIS,
                              config=_CLIENT_CONFIG)  # fmt: skip
    return session.client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL_SQS, config=_CLIENT_CONFIG)


def aws_writer(settings: Settings, client: Any, redis: AsyncClient) -> Writer:
    """The writer of STREAM_BACKEND=kinesis or sqs."""
    if settings.STREAM_BACKEND == "kinesis":
        return KinesisWriter(client, str(settings.KINESIS_STREAM), redis, settings.RESULT_TTL_S)
    return SqsWriter(client, str(settings.SQS_QUEUE_URL), redis, settings.RESULT_TTL_S)
