"""Lambda's event source mapping, run locally: the loop `streamfn poll --source kinesis|sqs` runs.

Each source (`streamfn.poller.sources.sqs`, `streamfn.poller.sources.kinesis`) reads its service
the way Lambda's mapping does and invokes the same infer handler, in process or through the Invoke
API (the LocalStack pattern). This loop polls until stopped, and backs off while a dependency (the
service, Redis, the function) is down.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from streamfn.core import metrics
from streamfn.poller.invoke import InvokeError

log = logging.getLogger(__name__)

# What a poll can meet that waiting cures: the service, Redis or the function down.
TRANSIENT = (BotoCoreError, ClientError, RedisError, InvokeError)


class MappedSource(Protocol):
    """A source read as Lambda's mapping reads it."""

    consumer: str
    arn: str

    def poll_once(self, wait: bool) -> int:
        """Read a batch (waiting a little for it when `wait`), invoke, settle; the records
        invoked (0: nothing was waiting)."""
        ...


class Mapping:
    """Polls a mapped source until stopped (in burst mode, until a poll finds nothing)."""

    def __init__(self, source: MappedSource, stopping: threading.Event | None = None) -> None:
        self.source = source
        self.stopping = stopping or threading.Event()
        self.last_poll: float | None = None  # monotonic time of the last poll that went through

    @property
    def consumer(self) -> str:
        return self.source.consumer

    def run(self, burst: bool = False) -> int:
        """Poll until stopped; return the records invoked (a retried record counts again)."""
        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT),
            wait=wait_exponential_jitter(initial=0.2, max=30),
            stop=lambda _: self.stopping.is_set(),
            sleep=self.stopping.wait,  # a stop request cuts a backoff short
            before_sleep=_log_backoff,
            reraise=True,
        )
        handled = 0
        log.info("mapping started", extra={"consumer": self.consumer, "source": self.source.arn})
        while not self.stopping.is_set():
            try:
                count = retrying(self._poll, not burst)
            except TRANSIENT:
                break  # stopping while a dependency is down
            handled += count
            if burst and count == 0:
                break
        log.info("mapping stopped", extra={"consumer": self.consumer, "handled": handled})
        return handled

    def _poll(self, wait: bool) -> int:
        count = self.source.poll_once(wait)
        self.last_poll = time.monotonic()
        return count


def _log_backoff(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    pause = state.next_action.sleep if state.next_action else 0.0
    metrics.POLLER_BACKOFFS.inc()
    log.warning(
        "poll failed; backing off",
        extra={"error": str(error), "attempt": state.attempt_number,
               "retry_in_s": round(pause, 2)},
    )  # fmt: skip
