"""Ingest's side of an SQS queue: SendMessageBatch of one message a request."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.connections import AsyncClient
from streamfn.core.keys import Keys
from streamfn.stream.aws import AwsWriter, refused

SQS_MAX_BYTES = 256 * 1024  # the largest message body SQS takes


class SqsWriter(AwsWriter):
    """SendMessageBatch of one message a request."""

    service = "SQS"
    max_bytes = SQS_MAX_BYTES

    def __init__(
        self, client: Any, queue_url: str, redis: AsyncClient, keys: Keys, ttl_s: int,
        idempotency_ttl_s: int,
    ) -> None:  # fmt: skip
        super().__init__(redis, keys, ttl_s, idempotency_ttl_s)
        self.client = client
        self.queue_url = queue_url

    def put(self, entry: bytes, records: list[dict[str, Any]]) -> str:
        """One SendMessageBatch; the message's id."""
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
