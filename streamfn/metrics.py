"""Prometheus metrics of every streamfn process, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INGEST_REQUESTS = Counter(
    "streamfn_ingest_requests_total", "Requests to POST /predict_stream by answer", ["status"]
)
INGEST_RECORDS = Counter(
    "streamfn_ingest_records_total", "Records accepted into the stream", ["model"]
)
INGEST_REJECTIONS = Counter(
    "streamfn_ingest_rejections_total", "Requests refused, by reason", ["reason"]
)
INGEST_LATENCY = Histogram(
    "streamfn_ingest_request_seconds",
    "Time to validate and append one request",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

INFER_RECORDS = Counter("streamfn_infer_records_total", "Records written to S3", ["model"])
INFER_FAILURES = Counter("streamfn_infer_failed_messages_total", "Messages that failed alone")
INFER_OUTAGES = Counter(
    "streamfn_infer_outages_total", "Batches failed whole because a dependency was down"
)
