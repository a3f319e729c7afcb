"""The poller: batches from the stream to the infer function, each settled once it has answered.

`run()` → `poll_once()` → `process_batch()`, over any source (streamfn.stream.base.Source): a
Redis Stream's consumer group, or a Kinesis stream or SQS queue read as Lambda's event source
mapping reads it. For each batch the source reads, the poller invokes the function (while the
source holds the batch), reads its `batchItemFailures`, and has the source settle what was done;
a batch that failed whole is an outage (backed off, retried as it is) or, for a source that can
split it, the source's to take care of.

While a dependency is down (Redis, the service, the function) the poller backs off with capped
exponential backoff and jitter; a stop request cuts the wait short, and the batch in flight is
always settled before it stops.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from streamfn.core import metrics
from streamfn.poller.invoke import InvokeError, Invoker, is_outage
from streamfn.stream.base import Batch, Source, failed_items

log = logging.getLogger(__name__)


def consumer_name() -> str:
    """A consumer name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Poller:
    """Reads a source's batches, invokes the infer function on each, settles what it wrote."""

    def __init__(
        self, source: Source, invoke: Invoker, stopping: threading.Event | None = None
    ) -> None:
        self.source = source
        self.invoke = invoke
        self.stopping = stopping or threading.Event()  # set: finish the batch in flight, stop
        self.last_poll: float | None = None  # monotonic time of the last poll that went through

    @property
    def consumer(self) -> str:
        """This poller's name among the stream's readers."""
        return self.source.consumer

    def run(self, burst: bool = False) -> int:
        """Poll until stopped (in burst mode, until a poll finds nothing); return the items
        invoked (an item tried again counts again)."""
        transient = (*self.source.transient, InvokeError)
        retrying = Retrying(
            retry=retry_if_exception_type(transient),
            wait=wait_exponential_jitter(initial=0.2, max=30),
            stop=lambda _: self.stopping.is_set(),
            sleep=self.stopping.wait,  # a stop request cuts a backoff short
            before_sleep=_log_backoff,
            reraise=True,
        )
        handled = 0
        log.info("poller started", extra={"consumer": self.consumer, "source": self.source.name})
        while not self.stopping.is_set():
            try:
                count = retrying(self.poll_once, not burst)
            except transient:
                break  # stopping while a dependency is down
            handled += count
            if burst and count == 0:
                break
        self.source.leave()
        log.info("poller stopped", extra={"consumer": self.consumer, "handled": handled})
        return handled

    def poll_once(self, wait: bool = True) -> int:
        """Invoke and settle the batches the source has now (waiting a little for one with
        `wait`); the items invoked."""
        count = 0
        for batch in self.source.batches(wait):
            self.process_batch(batch)
            count += len(batch.ids)
        self.last_poll = time.monotonic()
        return count

    def process_batch(self, batch: Batch[Any]) -> None:
        """Invoke infer on the batch; the source settles what it wrote."""
        started = time.perf_counter()
        try:
            with self.source.holding(batch):
                response = self.invoke(batch.event)
        except Exception as error:
            metrics.POLLER_BATCHES.labels("failed").inc()
            if is_outage(error) or not self.source.crashed(batch, error):
                raise InvokeError(f"batch of {len(batch.ids)} failed whole: {error}") from error
            return
        settled = self.source.settle(batch, failed_items(response, batch.ids))
        metrics.POLLER_BATCHES.labels("ok").inc()
        metrics.POLLER_ENTRIES.labels("acked").inc(settled.acked)
        metrics.POLLER_ENTRIES.labels("failed").inc(settled.failed)
        metrics.POLLER_ENTRIES.labels("dead_letter").inc(settled.dead)
        metrics.POLLER_BATCH_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "batch",
            extra={"consumer": self.consumer, **batch.where, "entries": len(batch.ids),
                   "acked": settled.acked, "failed": settled.failed,
                   "dead_lettered": settled.dead, "first_id": batch.ids[0],
                   "last_id": batch.ids[-1]},
        )  # fmt: skip


def _log_backoff(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    pause = state.next_action.sleep if state.next_action else 0.0
    metrics.POLLER_BACKOFFS.inc()
    log.warning(
        "poll failed; backing off",
        extra={"error": str(error), "attempt": state.attempt_number,
               "retry_in_s": round(pause, 2)},
    )  # fmt: skip
