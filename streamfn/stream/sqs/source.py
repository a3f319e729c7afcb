"""An SQS queue read as Lambda's SQS event source mapping reads it.

ReceiveMessage (long polling, 10 at a time) fills a batch of up to BATCH_SIZE messages for at most
BATCH_WINDOW_MS. The batch goes to the infer handler as Lambda's own SQS event. The messages it
did not name in `batchItemFailures` are deleted. The others stay in the queue and come back after
the queue's visibility timeout, and the queue's redrive policy moves a message to its dead-letter
queue after `maxReceiveCount` receives. A batch that fails whole deletes nothing. Answers naming
ids that are not in the batch fail it whole, as on Lambda. A poller killed mid-batch leaves its
messages to come back after the visibility timeout; the infer function writes their rows once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core import crash
from streamfn.core.settings import Settings
from streamfn.stream import events
from streamfn.stream.base import Batch, Settled, fill_batch

log = logging.getLogger(__name__)

RECEIVE_MAX = 10  # ReceiveMessage's and DeleteMessageBatch's limit
LONG_POLL_S = 1  # how long an idle receive waits; also how quickly a stop request is noticed

Message = dict[str, Any]  # a message as ReceiveMessage gives it


class SqsSource:
    """SQS_QUEUE_URL as Lambda's mapping reads it."""

    transient = (BotoCoreError, ClientError)

    def __init__(
        self, settings: Settings, client: Any, consumer: str,
        checkpoint: crash.Checkpoint = crash.no_crash,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.client = client
        self.consumer = consumer
        self.checkpoint = checkpoint
        self.queue_url = str(settings.SQS_QUEUE_URL)
        self.name = self.queue_url  # the queue's ARN once it has been asked for

    def batches(self, wait: bool) -> Iterator[Batch[Message]]:
        """At most one batch: up to BATCH_SIZE messages, the first waited for (with `wait`),
        more for at most BATCH_WINDOW_MS."""
        if not self.name.startswith("arn:"):
            reply = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )
            self.name = reply["Attributes"]["QueueArn"]

        def receive(count: int, first: bool) -> list[Message]:
            return self._receive(min(count, RECEIVE_MAX), LONG_POLL_S if first and wait else 0)

        messages = fill_batch(receive, self.settings.BATCH_SIZE,
                              self.settings.BATCH_WINDOW_MS / 1000)  # fmt: skip
        if messages:
            event = events.sqs_event(messages, self.name, self.settings.AWS_DEFAULT_REGION)
            yield Batch(messages, [m["MessageId"] for m in messages], event)

    def _receive(self, count: int, wait_s: int) -> list[Message]:
        reply = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
        )  # fmt: skip
        return list(reply.get("Messages", []))

    def holding(self, batch: Batch[Message]) -> AbstractContextManager[object]:
        """Nothing to renew: the queue's visibility timeout outlasts the longest invocation."""
        return contextlib.nullcontext()

    def settle(self, batch: Batch[Message], failed: set[str]) -> Settled:
        """Delete the messages the function wrote; the others come back."""
        done = [m for m in batch.items if m["MessageId"] not in failed]
        self.checkpoint("before_ack")
        self.delete(done)
        return Settled(len(done), len(failed))

    def crashed(self, batch: Batch[Message], error: BaseException) -> bool:
        """Nothing to do here: the messages come back after the visibility timeout."""
        return False

    def leave(self) -> None:
        """Nothing is held: a message not deleted comes back by itself."""

    def delete(self, messages: list[Message]) -> None:
        """DeleteMessageBatch, 10 at a time. A delete that fails (the receipt expired) leaves the
        message to come back: the infer function finds its rows written and writes none."""
        for start in range(0, len(messages), RECEIVE_MAX):
            chunk = messages[start : start + RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(chunk)]  # fmt: skip
            reply = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in reply.get("Failed", []):
                log.warning("message not deleted; it will come back", extra={
                    "message_id": chunk[int(failure["Id"])]["MessageId"],
                    "error": failure.get("Message", failure.get("Code"))})  # fmt: skip
