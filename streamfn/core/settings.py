"""Settings: every variable streamfn reads, from the environment once, validated at start."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamfn.core import plugins
from streamfn.core.crash import Step
from streamfn.core.keys import Keys, partition_stream

# The seed's three models, MODELS's default: API name (the `model=` query value) -> name in the
# MLflow Model Registry. `streamfn train` knows how to train these.
SEED_MODELS: dict[str, str] = {
    "svm": "SVC",
    "knn": "Knn_Classifier",
    "lightgbm": "LightGBM_Classifier",
}

PositiveInt = Annotated[int, Field(gt=0)]
# An API name is also a key partition (model=<name>) and a Redis key part: keep it plain.
_API_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

# Where the services listen by default (the local stack binds these); the URLs below use them.
REDIS_PORT = 6379
MLFLOW_PORT = 5001
INGEST_PORT = 8800
INFER_PORT = 8080  # `streamfn infer`: the port a function platform's container serves
S3_PORT = 9000


class ConfigError(RuntimeError):
    """A variable of the environment has a value streamfn cannot use."""


class Settings(BaseSettings):
    """One typed view of the environment; field names are the variable names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    REDIS_URL: str = f"redis://localhost:{REDIS_PORT}/0"
    # Where ingest appends requests: the Redis Stream (read by `streamfn poll`), a Kinesis stream
    # or an SQS queue (read by Lambda's event source mapping, or `streamfn poll --source`).
    STREAM_BACKEND: str = plugins.DEFAULT_BACKEND
    KINESIS_STREAM: str | None = None
    SQS_QUEUE_URL: str | None = None
    # Where `streamfn poll --source kinesis` sends a batch that failed MAX_DELIVERIES times (an
    # SQS queue, as Lambda's on-failure destination); unset: the batch is logged and skipped.
    ON_FAILURE_QUEUE_URL: str | None = None
    AWS_ENDPOINT_URL_KINESIS: str | None = None
    AWS_ENDPOINT_URL_SQS: str | None = None
    STREAM_KEY: str = Field("mlops_stream", min_length=1)
    CONSUMER_GROUP: str = Field("workers", min_length=1)
    # P > 1: the stream is P streams `<STREAM_KEY>:{p}` (streamfn.partitions).
    STREAM_PARTITIONS: int = Field(1, ge=1, le=1024)
    # REDIS_URL names any node of a Redis Cluster; every process uses a cluster client.
    REDIS_CLUSTER: bool = False
    # Ingest answers 202 only once WAIT confirms the entry on this many replicas (0: no WAIT).
    INGEST_WAIT_REPLICAS: int = Field(0, ge=0)

    MLFLOW_TRACKING_URI: str = f"http://localhost:{MLFLOW_PORT}"
    MODEL_ALIAS: str = Field("champion", min_length=1)
    MODEL_REFRESH_S: float = Field(30.0, ge=0)
    MODELS: str = ",".join(f"{api}={name}" for api, name in SEED_MODELS.items())
    OUTPUT_PROBABILITIES: bool = False
    # Reason codes: each row's N inputs that pushed most towards its prediction, with their
    # contributions (exact TreeSHAP; tree models only), for a hashed share of the messages.
    OUTPUT_EXPLANATIONS: int = Field(0, ge=0, le=20)
    EXPLAIN_SHARE: float = Field(1.0, ge=0, le=1)
    # Which runtime predicts (streamfn.models.runtimes): auto (a version's compiled ONNX graph
    # when its parity report says it is exact and faster, else its own model), native or onnx.
    PREDICT_RUNTIME: str = plugins.DEFAULT_RUNTIME
    # The model flavours a process may load (streamfn.models.trust): loading a pickle or a custom
    # pyfunc runs code from the registry, so those are listed on purpose or refused.
    MODEL_FLAVORS: str = plugins.DEFAULT_FLAVOURS
    # How row objects are written (the keys of streamfn.sink.formats: csv, parquet).
    SINK_FORMAT: str = plugins.DEFAULT_FORMAT
    CHALLENGER_ALIAS: str = Field("challenger", min_length=1)
    SHADOW_SHARE: float = Field(1.0, ge=0, le=1)  # of each batch's messages, scored in shadow
    # Of each model's messages (hashed by id), the share its challenger serves (the champion then
    # scores them in shadow); `streamfn canary` sets one model's share at run time, in Redis.
    CANARY_SHARE: float = Field(0.0, ge=0, le=1)

    PREDICTIONS_BUCKET: str = Field("predictions", min_length=3, max_length=63)
    AWS_ENDPOINT_URL_S3: str | None = None
    AWS_ACCESS_KEY_ID: str | None = None
    AWS_SECRET_ACCESS_KEY: SecretStr | None = None
    AWS_DEFAULT_REGION: str = "us-east-1"

    INGEST_API_KEY: SecretStr | None = None
    # Whether ingest may serve without INGEST_API_KEY: `key` refuses to start without one, `none`
    # serves open on purpose; unset, `key` when it listens beyond loopback (streamfn.api.auth).
    # A key that is set is always asked for.
    INGEST_AUTH: Literal["key", "none"] | None = None
    # The name of an SSM Parameter Store SecureString holding the key; read once at start
    # (streamfn.api_key) unless INGEST_API_KEY is set, so no secret sits in Lambda's environment.
    INGEST_API_KEY_PARAMETER: str | None = None
    # POST /feedback's own key (ground truth is not the producers' to write); unset: the ingest
    # key guards it too. FEEDBACK_API_KEY_PARAMETER: its SSM SecureString, as for the ingest key.
    FEEDBACK_API_KEY: SecretStr | None = None
    FEEDBACK_API_KEY_PARAMETER: str | None = None
    INGEST_URL: str = f"http://localhost:{INGEST_PORT}"
    MAX_RECORDS: PositiveInt = 10_000
    # How long a request's Idempotency-Key is remembered: a retry within it is answered as the
    # first request was, and appends nothing (each record ~300 B of Redis).
    IDEMPOTENCY_TTL_S: PositiveInt = 86_400
    MAX_BODY_BYTES: PositiveInt = 5 * 1024 * 1024
    MAX_LAG: PositiveInt = 10_000
    # The bytes of records a stream (each partition's) may hold not yet acknowledged: the byte
    # twin of MAX_LAG, so that 10,000 bodies of 5 MiB cannot fill Redis (503 beyond it).
    MAX_LAG_BYTES: PositiveInt = 256 * 1024 * 1024
    # A port of its own for /health (the process alive) and /metrics, for probes and a scraper's
    # network, open whatever the key (counts only); `--metrics-port` is its CLI form.
    METRICS_PORT: int | None = Field(None, ge=1, le=65535)

    BATCH_SIZE: PositiveInt = 256
    BATCH_WINDOW_MS: int = Field(100, ge=0)
    CLAIM_IDLE_MS: PositiveInt = 30_000
    MAX_DELIVERIES: PositiveInt = 5
    # How long dead letters are kept, counted from when they were dead-lettered (XTRIM MINID).
    DLQ_RETENTION_S: PositiveInt = 7 * 86_400
    INFER_FUNCTION_NAME: str | None = None
    AWS_ENDPOINT_URL_LAMBDA: str | None = None
    # The infer function's URL on a function platform (an OpenFaaS gateway, Knative, Cloud Run):
    # the poller POSTs each batch event there instead of invoking it in process or on Lambda.
    INFER_URL: str | None = None
    # boto3's own variable: the endpoint of every AWS service (LocalStack) unless a service's
    # AWS_ENDPOINT_URL_<SERVICE> says otherwise. Read here so that the S3 client addresses
    # buckets by path there, as it does on MinIO and moto.
    AWS_ENDPOINT_URL: str | None = None
    RESULT_TTL_S: PositiveInt = 3600

    MONITOR_WINDOW_S: int = Field(60, ge=0)  # whole seconds (window starts name keys); 0: off
    MONITOR_MIN_RECORDS: PositiveInt = 200
    DRIFT_PSI: float = Field(0.2, gt=0)
    # A window's attribution drifts when the inputs ranked by their live contributions keep the
    # reference's order with an nDCG below this (SageMaker Clarify's test).
    ATTRIBUTION_NDCG: float = Field(0.9, gt=0, le=1)
    # Estimate each window's accuracy and macro F1 from a version's calibrated probabilities
    # (when it has a calibration): what the labels will say, before they come back.
    ESTIMATE_PERFORMANCE: bool = True

    # Tests only: the infer function or poller exits at once at this step of the exactly-once
    # protocol (streamfn.crash), as a SIGKILL there would.
    CRASH_AT: Step | None = None

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator(
        "INGEST_URL",
        "INFER_URL",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_ENDPOINT_URL_KINESIS",
        "AWS_ENDPOINT_URL_SQS",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator(
        "INGEST_API_KEY",
        "INGEST_API_KEY_PARAMETER",
        "INGEST_AUTH",
        "METRICS_PORT",
        "FEEDBACK_API_KEY",
        "FEEDBACK_API_KEY_PARAMETER",
        "INFER_FUNCTION_NAME",
        "INFER_URL",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "CRASH_AT",
        "KINESIS_STREAM",
        "SQS_QUEUE_URL",
        "ON_FAILURE_QUEUE_URL",
        "AWS_ENDPOINT_URL_KINESIS",
        "AWS_ENDPOINT_URL_SQS",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose and SAM pass unset parameters as empty strings.
        return None if value == "" else value

    @field_validator("STREAM_BACKEND")
    @classmethod
    def _backend(cls, value: str) -> str:
        return _one_of(value, plugins.BACKENDS)

    @field_validator("SINK_FORMAT")
    @classmethod
    def _format(cls, value: str) -> str:
        return _one_of(value, plugins.FORMATS)

    @field_validator("PREDICT_RUNTIME")
    @classmethod
    def _runtime(cls, value: str) -> str:
        return _one_of(value, plugins.RUNTIME_CHOICES)

    @model_validator(mode="after")
    def _one_invoker(self) -> Settings:
        if self.INFER_URL and self.INFER_FUNCTION_NAME:
            raise ValueError("INFER_URL and INFER_FUNCTION_NAME both name the infer function: "
                             "set one")  # fmt: skip
        return self

    @property
    def s3_endpoint(self) -> str | None:
        """Where S3 is: AWS_ENDPOINT_URL_S3, else boto3's AWS_ENDPOINT_URL, else AWS."""
        return self.AWS_ENDPOINT_URL_S3 or self.AWS_ENDPOINT_URL

    @model_validator(mode="after")
    def _backend_named(self) -> Settings:
        for name, what in plugins.BACKENDS[self.STREAM_BACKEND].needs.items():
            if not getattr(self, name):
                raise ValueError(f"STREAM_BACKEND={self.STREAM_BACKEND} needs {name} ({what})")
        return self

    @field_validator("MODEL_FLAVORS")
    @classmethod
    def _flavours(cls, value: str) -> str:
        plugins.parse_flavours(value)  # raises ValueError naming the unknown flavour
        return value

    @property
    def model_flavours(self) -> frozenset[str]:
        """MODEL_FLAVORS as a set."""
        return plugins.parse_flavours(self.MODEL_FLAVORS)

    @field_validator("MODELS")
    @classmethod
    def _models(cls, value: str) -> str:
        parse_models(value)  # raises ValueError naming what is wrong
        return value

    @property
    def models(self) -> dict[str, str]:
        """API name -> registered name, in MODELS order (parsed once per value; do not mutate)."""
        return parse_models(self.MODELS)

    @property
    def streams(self) -> list[str]:
        """The stream of each partition, in partition order (one: STREAM_KEY itself)."""
        return [partition_stream(self.STREAM_KEY, p, self.STREAM_PARTITIONS)
                for p in range(self.STREAM_PARTITIONS)]  # fmt: skip

    @property
    def keys(self) -> Keys:
        """The Redis key names of this deployment."""
        in_redis = plugins.BACKENDS[self.STREAM_BACKEND].in_redis
        streams = tuple(self.streams) if in_redis else ()
        return Keys(self.REDIS_CLUSTER, self.STREAM_PARTITIONS, streams)


def _one_of(value: str, choices: Iterable[str]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


@lru_cache(maxsize=16)
def parse_models(value: str) -> dict[str, str]:
    """`api=Registered,…` as a dict; ValueError naming the first bad entry."""
    models: dict[str, str] = {}
    for entry in (part.strip() for part in value.split(",")):
        api, sep, registered = (p.strip() for p in entry.partition("="))
        if not sep or not registered:
            raise ValueError(f"{entry!r} is not api_name=RegisteredName")
        if not _API_NAME.fullmatch(api):
            raise ValueError(f"API name {api!r}: use lower-case letters, digits, - and _")
        if api in models:
            raise ValueError(f"API name {api!r} is given twice")
        models[api] = registered
    return models


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        # A check across variables has no one variable to name: its message names them.
        whole = item["msg"].removeprefix("Value error, ")
        lines.append(f"{name}={item.get('input')!r}: {item['msg']}" if name else whole)
    return "invalid configuration: " + "; ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus overrides); raise ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def defaults() -> Settings:
    """Every variable at its default, whatever the environment says."""
    return Settings.model_construct()
