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
ROOT = "streamfn:"
# On a Redis Cluster, a hash tag: every key below lives in one slot, so one Lua script can touch
# any of them (a script's keys must share a slot). The streams are spread by their own tags.
CLUSTER_ROOT = "{streamfn}:"


def root() -> str:
    """The start of every key streamfn keeps beside its streams (ROOT, or CLUSTER_ROOT).

    Read from the process's settings (get_settings: the environment), not from a Settings a
    caller holds: a key's name is fixed for the life of a process, and every function that
    names a key would otherwise need the settings passed down to it."""
    # Imported here: streamfn.config imports this module.
    from streamfn.core.settings import get_settings

    return CLUSTER_ROOT if get_settings().REDIS_CLUSTER else ROOT


def message_root(message_id: str) -> str:
    """The start of a message's own keys (its result, its shadow result). On a Redis Cluster
    with partitions, a stream id's keys carry its partition's hash tag: they live on the
    partition's master, beside its stream, and spread over the cluster as the streams do."""
    from streamfn.core.settings import get_settings
    from streamfn.stream.partitions import partition_of_id

    settings = get_settings()
    if settings.REDIS_CLUSTER and settings.STREAM_PARTITIONS > 1:
        partition = partition_of_id(message_id, settings.STREAM_PARTITIONS)
        if partition is not None:
            return f"{ROOT}{{{partition}}}:"
    return root()


def partition_stream(stream_key: str, partition: int, partitions: int) -> str:
    """The stream of one partition: STREAM_KEY itself when there is one, else `<key>:{p}`."""
    return stream_key if partitions == 1 else f"{stream_key}:{{{partition}}}"


def dlq_key(stream_key: str) -> str:
    """The dead-letter stream that goes with a stream (the same slot: it keeps the hash tag)."""
    return stream_key + DLQ_SUFFIX


def result_key(message_id: str) -> str:
    """The Redis key holding one message's result."""
    return f"{message_root(message_id)}result:{message_id}"


def shadow_key(message_id: str) -> str:
    """The Redis key holding one message's shadow result (the challenger's rows)."""
    return f"{message_root(message_id)}shadow:{message_id}"


def schema_key(api_name: str) -> str:
    """The Redis key where ingest keeps a model's last schema read from the registry."""
    return f"{root()}schema:{api_name}"


def labels_key(message_id: str) -> str:
    """The Redis hash of one message's ground-truth labels (POST /feedback)."""
    return f"{root()}labels:{message_id}"


def kinesis_key(stream: str, part: str) -> str:
    """A local Kinesis mapping's key (checkpoints, pollers, a shard's lease) for one stream."""
    return f"{root()}kinesis:{{{stream}}}:{part}"
