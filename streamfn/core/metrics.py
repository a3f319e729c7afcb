"""Prometheus metrics of every streamfn process, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

INGEST_REQUESTS = Counter(
    "streamfn_ingest_requests_total", "Requests to POST /predict_stream by answer", ["status"]
)
INGEST_RECORDS = Counter(
    "streamfn_ingest_records_total", "Records accepted into the stream", ["model"]
)
INGEST_REPLAYED = Counter(
    "streamfn_ingest_replayed_total",
    "Retries answered as their Idempotency-Key's first request was (nothing appended)",
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
END_TO_END_SECONDS = Histogram(
    "streamfn_end_to_end_seconds",
    "From acceptance (the entry's received_at) to its CSV object written",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
INFER_OUTAGES = Counter(
    "streamfn_infer_outages_total", "Batches failed whole because a dependency was down"
)

POLLER_BATCHES = Counter(
    "streamfn_poller_batches_total", "Batches invoked, by outcome", ["outcome"]
)
POLLER_ENTRIES = Counter(
    "streamfn_poller_entries_total", "Entries by outcome: acked, failed, dead_letter", ["outcome"]
)
POLLER_RECLAIMED = Counter("streamfn_poller_reclaimed_total", "Entries reclaimed by XAUTOCLAIM")
POLLER_BACKOFFS = Counter("streamfn_poller_backoffs_total", "Backoffs after a failed poll")
POLLER_BATCH_SECONDS = Histogram(
    "streamfn_poller_batch_seconds",
    "Invocation of one batch, acknowledgements included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POLLER_LAG = Gauge("streamfn_poller_lag", "Entries of the stream not yet delivered to the group")
MODEL_LOADS = Counter("streamfn_model_loads_total", "Model versions loaded", ["model", "version"])
SERVED_VERSION = Gauge(
    "streamfn_served_version",
    "The version a process serves per model, as champion or as challenger (in shadow)",
    ["model", "role"],
)

FEATURE_PSI = Gauge(
    "streamfn_feature_psi",
    "PSI of an input in the last closed window, against the version's reference",
    ["model", "version", "feature"],
)
PREDICTION_PSI = Gauge(
    "streamfn_prediction_psi",
    "PSI of the predictions in the last closed window, against the reference",
    ["model", "version"],
)
LIVE_MACRO_F1 = Gauge(
    "streamfn_live_macro_f1",
    "Macro F1 of the labelled rows of the last closed window",
    ["model", "version"],
)
ESTIMATED_MACRO_F1 = Gauge(
    "streamfn_estimated_macro_f1",
    "Macro F1 of the last closed window estimated without labels (CBPE, calibrated probabilities)",
    ["model", "version"],
)
ESTIMATED_ACCURACY = Gauge(
    "streamfn_estimated_accuracy",
    "Accuracy of the last closed window estimated without labels (CBPE)",
    ["model", "version"],
)
ATTRIBUTION_NDCG = Gauge(
    "streamfn_attribution_ndcg",
    "nDCG of the inputs ranked by their live attribution against the reference's ranking, last "
    "closed window (1: the same order)",
    ["model", "version"],
)
FLAGGED_WINDOWS = Counter(
    "streamfn_flagged_windows_total",
    "Closed windows flagged warn or drift",
    ["model", "version", "flag"],
)

SHADOW_RECORDS = Counter(
    "streamfn_shadow_records_total",
    "Records the challenger scored, written as shadow rows",
    ["model"],
)
SHADOW_FAILURES = Counter(
    "streamfn_shadow_failures_total",
    "Challenger versions that failed to load, or batches whose shadow predict failed",
    ["model", "stage"],
)
SHADOW_AGREEMENT = Gauge(
    "streamfn_shadow_agreement",
    "Share of the shadow-scored rows of the last closed window where challenger and champion agree",
    ["model", "version", "challenger"],
)
CHALLENGER_PREDICTION_PSI = Gauge(
    "streamfn_challenger_prediction_psi",
    "PSI of the challenger's predictions in the last closed window, against its reference",
    ["model", "challenger"],
)
CHALLENGER_MACRO_F1 = Gauge(
    "streamfn_challenger_macro_f1",
    "Macro F1 of the challenger on the labelled shadow rows of the last closed window",
    ["model", "challenger"],
)

CANARY_SHARE = Gauge(
    "streamfn_canary_share",
    "The share of a model's messages its challenger serves as the canary, in this process",
    ["model", "challenger"],
)
CANARY_STEP = Gauge(
    "streamfn_canary_step",
    "The step `streamfn canary` has reached (1 the first; 0 none running)",
    ["model", "challenger"],
)
CANARY_RECORDS = Counter(
    "streamfn_canary_records_total",
    "Records the challenger served as the canary (its rows are the served rows)",
    ["model"],
)
CANARY_FAILURES = Counter(
    "streamfn_canary_failures_total",
    "Records of the canary share the challenger could not serve (the champion served them)",
    ["model"],
)
CANARY_ROLLBACKS = Counter(
    "streamfn_canary_rollbacks_total",
    "Rollbacks `streamfn canary` made, as kept in Redis (each poller publishes what it read)",
    ["model"],
)

FEEDBACK_LABELS = Counter(
    "streamfn_feedback_labels_total",
    "Labels joined by POST /feedback: counted, repeated (sent again), or conflict (another label"
    " for a record that has one: the first is kept)",
    ["outcome"],
)

PRODUCER_RECORDS = Counter(
    "streamfn_producer_records_total",
    "Records the producer sent, by outcome: accepted, rejected, undelivered",
    ["outcome"],
)


def sample_name(metric: MetricWrapperBase) -> str:
    """The name a metric's samples carry in a scrape (a counter's ends in `_total`)."""
    family = metric.describe()[0].name
    return family + "_total" if isinstance(metric, Counter) else family
