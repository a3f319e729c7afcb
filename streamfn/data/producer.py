"""The producer: synthetic records sent to the ingest API in batches, at a steady rate or a count.

Nothing is dropped silently. Every record ends in one of three counts: accepted (202), rejected
(the API refused it: 4xx other than 429; the first errors are kept and logged) or undelivered
(the API stayed unreachable for `give_up_s`, or a second stop request abandoned the retries).
429 and 503 answers are retried after their `Retry-After`; connection failures and other 5xx
with capped exponential backoff. A request whose answer was lost (a timeout after sending) is
sent again with the same Idempotency-Key (one per request), so the ingest appends it once and
answers the retry with the first message id; only a retry after IDEMPOTENCY_TTL_S, or one to a
Kinesis or SQS ingest that died between its put and its record, could append it twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

from streamfn.api.auth import client_headers
from streamfn.core import metrics
from streamfn.core.settings import Settings
from streamfn.data.labels import LabelSender
from streamfn.data.plan import (
    LAMBDA_MARGIN_S,
    MAX_RETRY_AFTER_S,
    Pacer,
    Plan,
    Tally,
    retry_after_s,
)
from streamfn.data.samplers import Sampler, SamplerError, for_models

log = logging.getLogger(__name__)

THROTTLED = frozenset({429, 503})  # the API asks us to slow down
RETRY_STATUSES = THROTTLED | {500, 502, 504}
REQUEST_TIMEOUT_S = 10.0


class Producer:
    """Sends batches of synthetic records to INGEST_URL, `concurrency` requests at a time."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        client: httpx.AsyncClient,
        samplers: Mapping[str, Sampler] | None = None,
    ) -> None:
        self.plan = plan
        self.models = plan.models_of(settings)
        self.samplers = samplers or for_models(
            settings,
            self.models,
            plan.seed,
            drift=plan.drift,
            labels=plan.drift_labels,
            concept=plan.concept,
        )
        if plan.labels:
            unlabelled = [m for m in self.models if not hasattr(self.samplers[m], "labelled")]
            if unlabelled:
                raise SamplerError(
                    f"--labels: the records drawn for {', '.join(unlabelled)} carry no label "
                    "(only the seed's models' do)"
                )
        self.client = client
        self.url = f"{settings.INGEST_URL}/predict_stream"
        self.headers = {"content-type": "application/json",
                        **client_headers(settings.INGEST_API_KEY)}  # fmt: skip
        self.tally = Tally()
        # Labels go with the feedback key when there is one (the ingest key does not take them).
        feedback_key = settings.FEEDBACK_API_KEY or settings.INGEST_API_KEY
        self.labels = LabelSender(
            client, f"{settings.INGEST_URL}/feedback",
            {**self.headers, **client_headers(feedback_key)}, self.tally, plan.give_up_s,
        )  # fmt: skip
        self.pacer = Pacer(plan.rate)
        self.stopping = asyncio.Event()  # first stop: send nothing new, finish what is in flight
        self.abandon = asyncio.Event()  # second stop: give up the retries too

    def stop(self) -> None:
        """First call: send nothing new and finish the batches in flight. Second: give up."""
        if self.stopping.is_set():
            self.abandon.set()
        self.stopping.set()

    def batches(self) -> Iterator[tuple[str, list[dict[str, Any]], list[float | None]]]:
        """(model, records, their labels if asked for) per request, the models in turn, until
        the count is reached."""
        models = itertools.cycle(self.models)
        left = self.plan.count
        while left is None or left > 0:
            size = self.plan.batch if left is None else min(self.plan.batch, left)
            model = next(models)
            sampler = self.samplers[model]
            if self.plan.labels:
                yield model, *sampler.labelled(size)  # type: ignore[attr-defined]
            else:
                yield model, sampler.records(size), []
            if left is not None:
                left -= size

    async def run(self, on_progress: Callable[[Tally], None] | None = None) -> Tally:
        """Send until the count is reached or a stop is requested; return the final tally."""
        slots = asyncio.Semaphore(self.plan.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def send(model: str, records: list[dict[str, Any]], truths: list) -> None:
            try:
                await self.send(model, records, truths)
            finally:
                slots.release()
                if on_progress is not None:
                    on_progress(self.tally)

        for model, records, truths in self.batches():
            await self._pause(self.pacer.delay(len(records)))
            await slots.acquire()
            if self.stopping.is_set():
                slots.release()
                break
            task = asyncio.create_task(send(model, records, truths))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        await self.labels.drain()
        self.tally.behind_s = self.pacer.behind_s
        self.tally.finished = time.monotonic()
        return self.tally

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short by a stop request."""
        if seconds > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)

    async def send(
        self, model: str, records: list[dict[str, Any]], truths: list[float | None] | None = None
    ) -> None:
        """POST one batch, retrying what may be retried, and count its records' outcome; then,
        with labels, post them."""
        count = len(records)
        body = orjson.dumps({"data": records})
        self.tally.requests += 1
        self.tally.sent += count
        # One key per request, the same on each of its retries: appended once however often sent.
        headers = {**self.headers, "idempotency-key": secrets.token_urlsafe(24)}
        try:
            answer = await self._post(model, body, headers)
        except (httpx.TransportError, _AbandonedError) as error:
            self.tally.undelivered += count
            metrics.PRODUCER_RECORDS.labels("undelivered").inc(count)
            self.tally.keep_error(f"undelivered: {type(error).__name__}: {error}")
            log.error("batch undelivered", extra={"model": model, "records": count,
                                                  "error": str(error)})  # fmt: skip
            return
        if answer.status_code == 202:
            self.tally.accepted += count
            self.tally.last_accepted = time.monotonic()
            metrics.PRODUCER_RECORDS.labels("accepted").inc(count)
            if truths:
                self.labels.send(answer.json()["message_id"], truths)
            return
        if answer.status_code in RETRY_STATUSES:  # still refused when the retries ran out
            self.tally.undelivered += count
            metrics.PRODUCER_RECORDS.labels("undelivered").inc(count)
        else:
            self.tally.rejected += count
            metrics.PRODUCER_RECORDS.labels("rejected").inc(count)
        text = f"{answer.status_code}: {answer.text[:300]}"
        self.tally.keep_error(text)
        log.warning("batch refused", extra={"model": model, "records": count, "answer": text})

    async def _post(self, model: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=(
                retry_if_exception_type(httpx.TransportError)
                | retry_if_result(lambda a: a.status_code in RETRY_STATUSES)
            ),
            wait=self._wait,
            stop=stop_after_delay(self.plan.give_up_s) | stop_when_event_set(self.abandon),
            sleep=self._retry_sleep,
            before_sleep=self._count_retry,
            retry_error_callback=_last_outcome,
        )
        return await retrying(
            self.client.post, self.url, params={"model": model}, content=body, headers=headers
        )

    _backoff = wait_exponential_jitter(initial=0.2, max=MAX_RETRY_AFTER_S)

    def _wait(self, state: RetryCallState) -> float:
        """The answer's Retry-After when it gave one, else capped exponential backoff."""
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            after = retry_after_s(outcome.result())
            if after is not None:
                return after
        return self._backoff(state)

    def _count_retry(self, state: RetryCallState) -> None:
        self.tally.retries += 1
        outcome = state.outcome
        if outcome is not None and not outcome.failed and outcome.result().status_code in THROTTLED:
            self.tally.throttled += 1

    async def _retry_sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.abandon.wait(), seconds)
        except TimeoutError:
            return
        raise _AbandonedError("stopped while retrying")


class _AbandonedError(RuntimeError):
    """A second stop request came while a batch waited to be retried."""


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """When retries run out, the last answer (its records are counted) or its exception."""
    assert state.outcome is not None
    return state.outcome.result()  # raises the transport error, if that was the last outcome


@asynccontextmanager
async def open_producer(
    settings: Settings, plan: Plan, data: Path | None = None
) -> AsyncIterator[Producer]:
    """A producer with an HTTP client of its own, closed on exit (`data`: rows to resample)."""
    samplers = for_models(
        settings,
        plan.models_of(settings),
        plan.seed,
        data,
        drift=plan.drift,
        labels=plan.drift_labels,
        concept=plan.concept,
    )
    limits = httpx.Limits(max_connections=plan.concurrency)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        yield Producer(settings, plan, client, samplers)


async def produce(settings: Settings, plan: Plan, time_left_s: float | None = None) -> Tally:
    """Run a plan to its end; with `time_left_s`, give up in time to answer (a Lambda's limit)."""
    async with open_producer(settings, plan) as producer:
        if time_left_s is not None:

            def out_of_time() -> None:
                producer.stop()  # nothing new
                producer.stop()  # and no more retries: what is still pending is undelivered

            deadline = max(time_left_s - LAMBDA_MARGIN_S, 0.0)
            asyncio.get_running_loop().call_later(deadline, out_of_time)
        return await producer.run()
