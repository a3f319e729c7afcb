"""Names shared by every process: model names and the Redis keys derived from settings."""

from __future__ import annotations

# API name (the `model=` query value) -> name in the MLflow Model Registry (the seed's names).
REGISTERED_MODELS: dict[str, str] = {
    "svm": "SVC",
    "knn": "Knn_Classifier",
    "lightgbm": "LightGBM_Classifier",
}
API_NAMES: tuple[str, ...] = tuple(REGISTERED_MODELS)

DLQ_SUFFIX = ":dlq"
RESULT_PREFIX = "streamfn:result:"


def dlq_key(stream_key: str) -> str:
    """The dead-letter stream that goes with a stream."""
    return stream_key + DLQ_SUFFIX


def result_key(message_id: str) -> str:
    """The Redis key holding one message's result."""
    return RESULT_PREFIX + message_id
