"""(a) The in-process floor: what one process does per batch, with nothing around it, with the
runtime the model is loaded with (streamfn.models.runtimes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from streamfn.bench import Measurement
from streamfn.core.clock import now_ms
from streamfn.infer import handler
from streamfn.infer.messages import Message
from streamfn.models.loaded import LoadedModel
from streamfn.sink.formats.base import Format, format_named


def one_batch(
    model: LoadedModel, records: list[dict[str, Any]], fmt: Format | None = None
) -> bytes:
    """Inputs built, predict, encode (CSV unless another format is given): the infer function's
    own work for one message, with its own functions and the model's runtime, without I/O."""
    now = now_ms()
    message = Message("1-0", model.api_name, records, now)
    predicted = handler.predict(model, [message], probabilities=False)
    rows = handler.rows_of(model, [message], predicted, now)
    return (fmt or format_named("csv")).encode(model.schema, rows, (), False)


def timed(call: Callable[[], object], seconds: float, at_least: int = 5) -> list[float]:
    """Seconds per call, repeated for about `seconds` (and at least `at_least` times)."""
    call()  # warm
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(durations) < at_least or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


def measure(model: LoadedModel, records: list[dict[str, Any]], seconds: float) -> Measurement:
    """Records/s and per-call latency of one batch size."""
    durations = timed(lambda: one_batch(model, records), seconds)
    per_call = np.asarray(durations) * 1000
    return Measurement(
        "floor", model.api_name, len(records), len(records) * len(durations) / sum(durations),
        float(np.percentile(per_call, 50)), float(np.percentile(per_call, 99)),
        "one call: inputs + predict + CSV", f"runtime {model.runtime_name}",
    )  # fmt: skip
