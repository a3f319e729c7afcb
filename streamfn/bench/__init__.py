"""`streamfn bench` (SPEC section 9): the pipeline against its floor and its peers, in one run.

(a) the in-process floor: DataFrame build + predict + CSV encode of the same records;
(b) the whole pipeline over HTTP: wrk → ingest → Redis Stream → pollers → infer → CSV in S3,
    records/s sustained end to end, and latency from acceptance to row in S3 at half that rate;
    with it, ingest alone against a bare FastAPI endpoint;
(c) `mlflow models serve` on the same registered model and records;
(d) the seed's design: one record per message, the model loaded from the registry per message,
    one CSV line appended per message.
Every process is started here on free ports; the registry is a SQLite store trained once and
kept under the output directory (or `--registry`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """One row of the results table."""

    design: str  # floor, pipeline, mlflow serve, seed, ingest, bare ingest
    model: str
    records_per_request: int
    records_per_s: float
    p50_ms: float
    p99_ms: float
    latency_of: str  # what the latency measures
    note: str = ""


DESIGNS = {
    "floor": "(a) in-process floor",
    "pipeline": "(b) streamfn pipeline",
    "mlflow serve": "(c) mlflow models serve",
    "seed": "(d) the seed's design",
    "ingest": "ingest alone (full validation)",
    "bare ingest": "bare FastAPI + XADD (parse, no validation)",
}
