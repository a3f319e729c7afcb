"""The producer's ground truth: for each message it sent, POST /feedback with the labels of its
records, once the message is predicted (until then the ingest answers 422 "not_ready")."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import orjson

from streamfn.data.plan import Tally

log = logging.getLogger(__name__)

RETRY_EVERY_S = 0.5


class LabelSender:
    """Posts each message's labels as soon as the message is predicted; counts what was joined."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], tally: Tally,
        give_up_s: float,
    ) -> None:  # fmt: skip
        self.client = client
        self.url = url
        self.headers = headers
        self.tally = tally
        self.give_up_s = give_up_s
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message_id: str, burn_rates: list[float | None]) -> None:
        """Post the labels of a message's records in the background (records without one are
        left out)."""
        labels = [{"message_id": message_id, "record_index": i, "burn_rate": rate}
                  for i, rate in enumerate(burn_rates) if rate is not None]  # fmt: skip
        self.tally.no_label += len(burn_rates) - len(labels)
        if labels:
            task = asyncio.create_task(self._post(labels))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every label posted so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _post(self, labels: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + self.give_up_s
        body = orjson.dumps({"labels": labels})
        while True:
            try:
                answer = await self.client.post(self.url, content=body, headers=self.headers)
            except httpx.TransportError as error:
                answer, problem = None, f"feedback undelivered: {error}"
            else:
                if answer.status_code == 202:
                    self.tally.labelled += answer.json()["counted"]
                    return
                problem = f"feedback {answer.status_code}: {answer.text[:300]}"
            if not (answer is None or _not_ready(answer)) or time.monotonic() > deadline:
                self.tally.unlabelled += len(labels)
                self.tally.keep_error(problem)
                log.warning("labels not joined", extra={"labels": len(labels), "answer": problem})
                return
            await asyncio.sleep(RETRY_EVERY_S)


def _not_ready(answer: httpx.Response) -> bool:
    """Whether a refusal only says the message is not predicted yet (or Redis is busy)."""
    if answer.status_code in (429, 503):
        return True
    if answer.status_code != 422:
        return False
    try:
        errors = answer.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    return all(e.get("type") == "not_ready" for e in errors)
