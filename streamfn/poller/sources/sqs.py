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

import logging
import time
from typing import Any

from streamfn.core import crash, metrics
from streamfn.core.settings import Settings
from streamfn.poller.invoke import InvokeError, Invoker
from streamfn.stream import events

log = logging.getLogger(__name__)

RECEIVE_MAX = 10  # ReceiveMessage's and DeleteMessageBatch's limit
LONG_POLL_S = 1  # how long an idle receive waits; also how quickly a stop request is noticed


class SqsSource:
    """SQS_QUEUE_URL as Lambda's mapping reads it, each batch invoked through `invoke`."""

    def __init__(
        self, settings: Settings, client: Any, invoke: Invoker, consumer: str,
        checkpoint: crash.Checkpoint = crash.no_crash,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.client = client
        self.invoke = invoke
        self.consumer = consumer
        self.checkpoint = checkpoint
        self.queue_url = str(settings.SQS_QUEUE_URL)
        self.arn = self.queue_url  # the queue's ARN once it has been asked for

    def poll_once(self, wait: bool) -> int:
        """Receive a batch, invoke, delete what it wrote; return the batch's size."""
        if not self.arn.startswith("arn:"):
            reply = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )
            self.arn = reply["Attributes"]["QueueArn"]
        messages = self.receive(wait)
        if messages:
            self.process(messages)
        return len(messages)

    def receive(self, wait: bool) -> list[dict[str, Any]]:
        """Up to BATCH_SIZE messages: the first waited for, more for at most BATCH_WINDOW_MS."""
        limit = self.settings.BATCH_SIZE
        messages = self._receive(min(limit, RECEIVE_MAX), LONG_POLL_S if wait else 0)
        deadline = time.monotonic() + self.settings.BATCH_WINDOW_MS / 1000
        while messages and len(messages) < limit and time.monotonic() < deadline:
            more = self._receive(min(limit - len(messages), RECEIVE_MAX), 0)
            if not more:
                break  # nothing waiting: go now rather than wait for a fuller batch
            messages += more
        return messages

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        reply = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
        )  # fmt: skip
        return list(reply.get("Messages", []))

    def process(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the handler on Lambda's SQS event; delete the messages it wrote."""
        started = time.perf_counter()
        event = events.sqs_event(messages, self.arn, self.settings.AWS_DEFAULT_REGION)
        try:
            response = self.invoke(event)
        except Exception as error:
            metrics.POLLER_BATCHES.labels("failed").inc()
            raise InvokeError(f"batch of {len(messages)} failed whole: {error}") from error
        named = {f.get("itemIdentifier") for f in response.get("batchItemFailures", [])}
        ids = {m["MessageId"] for m in messages}
        failed = ids if named - ids else named  # an unknown id fails the batch whole
        done = [m for m in messages if m["MessageId"] not in failed]
        self.checkpoint("before_ack")
        self.delete(done)
        metrics.POLLER_BATCHES.labels("ok").inc()
        metrics.POLLER_ENTRIES.labels("acked").inc(len(done))
        metrics.POLLER_ENTRIES.labels("failed").inc(len(failed))
        metrics.POLLER_BATCH_SECONDS.observe(time.perf_counter() - started)
        log.info("batch", extra={"consumer": self.consumer, "entries": len(messages),
                                 "acked": len(done), "failed": len(failed)})  # fmt: skip

    def delete(self, messages: list[dict[str, Any]]) -> None:
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
