"""What plugs into the pipeline's seams, by the name a variable gives it: what the settings, the
CLI and the app ask ("which backends are there?"), kept as plain data.

- Stream backends (STREAM_BACKEND): each is a folder `streamfn/stream/<name>/` whose `BACKEND`
  (a `streamfn.stream.base.Backend`) makes ingest's writer, a poller's source and the local
  emulation of `streamfn up --backend`.
- Sink formats (SINK_FORMAT): each is a module `streamfn/sink/formats/<name>.py` whose `FORMAT`
  (a `streamfn.sink.formats.base.Format`) writes rows and reads them back.
- Model runtimes (PREDICT_RUNTIME): each is a module `streamfn/models/runtimes/<name>.py` whose
  runtime predicts a loaded version's batches; `auto` lets each version's parity report choose
  (`streamfn.models.runtimes.choice`).
- Model flavours (MODEL_FLAVORS): the formats of registered versions a process may load
  (streamfn.models.trust).

A backend or a format is imported when it is first used (`streamfn.stream.base.backend`,
`streamfn.sink.formats.base.format_named`): a process on Redis never imports boto3, and the
ingest function never imports pyarrow unless it meets a Parquet object. Adding one is its folder
or module, a line below, and the variables it needs in the settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """What is known of a stream backend before it is imported."""

    needs: dict[str, str]  # the variables it cannot run without, and what each names
    in_redis: bool  # its streams are Redis streams: counts are kept beside them


@dataclass(frozen=True)
class Format:
    """What is known of a sink format before it is imported."""

    suffix: str  # of its objects' keys
    content_type: str


BACKENDS: dict[str, Backend] = {
    "redis": Backend(needs={}, in_redis=True),
    "kinesis": Backend(needs={"KINESIS_STREAM": "the stream's name"}, in_redis=False),
    "sqs": Backend(needs={"SQS_QUEUE_URL": "the queue's URL"}, in_redis=False),
}
DEFAULT_BACKEND = "redis"

FORMATS: dict[str, Format] = {
    "csv": Format(".csv", "text/csv; charset=utf-8"),
    "parquet": Format(".parquet", "application/vnd.apache.parquet"),
}
DEFAULT_FORMAT = "csv"  # the seed's format


RUNTIMES: dict[str, str] = {
    "native": "the version's own model (its scikit-learn estimator, or MLflow's pyfunc)",
    "onnx": "ONNX Runtime on the version's compiled model.onnx (or on a model logged as ONNX)",
}
RUNTIME_CHOICES = ("auto", *RUNTIMES)  # PREDICT_RUNTIME's values
DEFAULT_RUNTIME = "auto"

# The model flavours a process may be allowed to load (MODEL_FLAVORS; streamfn.models.trust says
# how a version's flavour is told), and why each is what it is: a refusal names it.
PYTHON_FUNCTION = "python_function"
FLAVOURS: dict[str, str] = {
    "sklearn": "scikit-learn saved with skops",
    "lightgbm": "LightGBM's own format, or skops",
    "xgboost": "XGBoost's own format",
    "onnx": "an ONNX graph",
    "sklearn:pickle": "scikit-learn pickled: loading it runs what the pickle says",
    "sklearn:cloudpickle": "scikit-learn cloudpickled: loading it runs what the pickle says",
    "lightgbm:pickle": "LightGBM pickled: loading it runs what the pickle says",
    "lightgbm:cloudpickle": "LightGBM cloudpickled: loading it runs what the pickle says",
    PYTHON_FUNCTION: "a model of its own Python code: loading it runs that code",
}
# Those that load without running the model's own code, and that streamfn trains and compiles.
DEFAULT_FLAVOURS = "sklearn,lightgbm,onnx"


def parse_flavours(value: str) -> frozenset[str]:
    """MODEL_FLAVORS as a set; ValueError naming an unknown flavour."""
    found = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(found - FLAVOURS.keys())
    if unknown:
        raise ValueError(
            f"unknown flavour {', '.join(unknown)}: choose among {', '.join(FLAVOURS)}"
        )
    return found


def format_name_of(key: str) -> str | None:
    """The format a row object's key names by its suffix (None: no format's)."""
    return next((name for name, f in FORMATS.items() if key.endswith(f.suffix)), None)
