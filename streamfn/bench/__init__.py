"""`streamfn bench`: the pipeline against its floor and its peers, in one run.

(a) the in-process floor: DataFrame build + predict + CSV encode of the same records;
(b) the whole pipeline over HTTP: wrk → ingest → Redis Stream → pollers → infer → CSV in S3,
    records/s sustained end to end, latency from acceptance to row in S3 at half that rate, and
    for LightGBM the latency under load: p50 and p99 at rates from 10 requests/s to the maximum;
    with it, ingest alone against a bare FastAPI endpoint;
(c) `mlflow models serve` on the same registered model and records;
(d) the seed's design: one record per message, the model loaded from the registry per message,
    one CSV line appended per message;
(e) MLServer with adaptive batching (what MLflow points to for production serving, and what
    KServe and Seldon run), in a virtualenv of its own.
Every process is started here on free ports; the registry is a SQLite store trained once and
kept under the output directory (or `--tracking-uri`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """One row of the results table."""

    design: str  # floor, pipeline, mlflow serve, seed, mlserver, ingest, bare ingest
    model: str
    records_per_request: int
    records_per_s: float
    p50_ms: float
    p99_ms: float
    latency_of: str  # what the latency measures
    note: str = ""


@dataclass(frozen=True)
class CurvePoint:
    """The pipeline's latency at one offered rate: one point of the latency-under-load curve."""

    model: str
    records_per_request: int
    offered_per_s: float  # requests/s asked of wrk
    achieved_per_s: float  # requests/s accepted
    p50_ms: float
    p99_ms: float
    messages: int


DESIGNS = {
    "floor": "(a) in-process floor",
    "pipeline": "(b) streamfn pipeline",
    "mlflow serve": "(c) mlflow models serve",
    "seed": "(d) the seed's design",
    "mlserver": "(e) MLServer, adaptive batching",
    "ingest": "ingest alone (full validation)",
    "bare ingest": "bare FastAPI + XADD (parse, no validation)",
}
