"""Names shared by every process: the seed's models and the Redis keys streamfn uses."""

from __future__ import annotations

# The seed's three models, MODELS's default: API name (the `model=` query value) -> name in the
# MLflow Model Registry. `streamfn train` knows how to train these.
SEED_MODELS: dict[str, str] = {
    "svm": "SVC",
    "knn": "Knn_Classifier",
    "lightgbm": "LightGBM_Classifier",
}


def is_seed_model(api_name: str, registered_name: str) -> bool:
    """Whether MODELS maps this API name to the seed's model of that name."""
    return SEED_MODELS.get(api_name) == registered_name


DLQ_SUFFIX = ":dlq"
RESULT_PREFIX = "streamfn:result:"
SHADOW_PREFIX = "streamfn:shadow:"
SCHEMA_PREFIX = "streamfn:schema:"
KINESIS_PREFIX = "streamfn:kinesis:"  # a local Kinesis mapping's checkpoints and shard leases


def dlq_key(stream_key: str) -> str:
    """The dead-letter stream that goes with a stream."""
    return stream_key + DLQ_SUFFIX


def result_key(message_id: str) -> str:
    """The Redis key holding one message's result."""
    return RESULT_PREFIX + message_id


def shadow_key(message_id: str) -> str:
    """The Redis key holding one message's shadow result (the challenger's rows)."""
    return SHADOW_PREFIX + message_id


def schema_key(api_name: str) -> str:
    """The Redis key where ingest keeps a model's last schema read from the registry."""
    return SCHEMA_PREFIX + api_name
