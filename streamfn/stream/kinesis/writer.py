"""Ingest's side of a Kinesis stream: PutRecords of one record a request."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.connections import AsyncClient
from streamfn.core.keys import Keys
from streamfn.stream.aws import AwsWriter, partition_key, refused
from streamfn.stream.events import kinesis_message_id

KINESIS_MAX_BYTES = 1024 * 1024  # the largest record's data Kinesis takes


class KinesisWriter(AwsWriter):
    """PutRecords of one record a request, its partition key the Employee ID."""

    service = "Kinesis"
    max_bytes = KINESIS_MAX_BYTES

    def __init__(
        self, client: Any, stream: str, redis: AsyncClient, keys: Keys, ttl_s: int,
        idempotency_ttl_s: int,
    ) -> None:  # fmt: skip
        super().__init__(redis, keys, ttl_s, idempotency_ttl_s)
        self.client = client
        self.stream = stream

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        """One PutRecords; the record's `<shard id>:<sequence number>`."""
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
