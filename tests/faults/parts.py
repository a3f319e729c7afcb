"""What the fault suite's pipeline is built from: moto's S3, the registry, the producer's plan,
the pollers' metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamfn.core.settings import load_settings
from streamfn.data import producer
from streamfn.data.plan import Plan
from streamfn.local.stack import Process, free_port
from streamfn.models.seed import EMPLOYEE_ID
from tests.conftest import s3_client


class MotoS3:
    """moto's S3 server in this process; stop() then start() is an outage that keeps the objects."""

    # moto's state lives in this process, not in the server thread: a restart on the same port
    # serves the same buckets again.

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.client = s3_client(self.endpoint)

    def start(self) -> None:
        """Serve (again)."""
        self.server.start()

    def stop(self) -> None:
        """Shut the server down; its listening socket closes, so clients are refused."""
        self.server.stop()


@dataclass(frozen=True)
class Registry:
    """The session's MLflow server and the champion versions training registered."""

    uri: str
    port: int
    champions: dict[str, str]


def planned_records(count: int, batch: int, seed: int, models: Sequence[str]) -> dict[str, str]:
    """Employee ID -> model of the records `streamfn produce` sends for this plan, in order."""
    plan = Plan(count=count, models=tuple(models), batch=batch, seed=seed)
    # Only batches() is used: it draws the records exactly as the producer child will.
    settings = load_settings(INGEST_URL="http://127.0.0.1:1")
    sender = producer.Producer(settings, plan, client=None)  # type: ignore[arg-type]
    records: dict[str, str] = {}
    for model, batch_records, _ in sender.batches():
        for record in batch_records:
            records[record[EMPLOYEE_ID]] = model
    if len(records) != count:  # ids are drawn at random: a seed may repeat one
        pytest.fail(f"seed {seed} repeats an Employee ID in {count} records: pick another seed")
    return records


@dataclass
class Production:
    """A `streamfn produce` child and the records it sends."""

    child: Process
    records: dict[str, str]
    summary: dict[str, Any] = field(default_factory=dict)


def metric_samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` on a Prometheus endpoint."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]
