"""One model's predictions for a group of messages: one call for them all, or one call per
message to find the culprit when the batch's call fails.

The records become column arrays once (streamfn.models.columns), whatever runtime serves: the
runtime predicts from them, the monitoring counts read them, and a challenger scores them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from streamfn.infer.messages import Message
from streamfn.models.columns import join, size, take
from streamfn.models.loaded import LoadedModel
from streamfn.sink.rows import Row

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]  # a call's input columns

Errors = dict[str, str]


@dataclass
class Predicted:
    """One model's outputs for a group of messages: per message, its predictions and, when
    asked for, its records' class probabilities."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    probabilities: dict[str, list[list[float]]] = field(default_factory=dict)
    errors: Errors = field(default_factory=dict)
    # The input columns the predictions came from, one batch per call, and where each message's
    # rows are in them: the monitoring counts and the challenger read the same columns.
    batches: list[Batch] = field(default_factory=list)
    rows: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # batch, start, end
    # Per message, its rows' calibrated probabilities (rows x classes), when the version has a
    # calibration and the window counts estimate its performance.
    calibrated: dict[str, np.ndarray] = field(default_factory=dict)


def predict(
    model: LoadedModel, messages: Sequence[Message], probabilities: bool, estimate: bool = False
) -> Predicted:
    """Predictions per message in one call; on a failure, per message to find the culprit.
    With `estimate`, also the calibrated probabilities of a version that has a calibration."""
    try:
        return predict_all(model, messages, probabilities, estimate)
    except Exception:  # any model error: isolate the culprit below
        return predict_each(model, messages, probabilities, estimate)


def predict_all(
    model: LoadedModel, messages: Sequence[Message], probabilities: bool, estimate: bool = False
) -> Predicted:
    """Predictions per message in one call; the model's error, if any, is raised."""
    columns = model.columns([r for m in messages for r in m.records])
    estimate = estimate and model.calibration is not None
    # A calibration of probabilities reads the runtime's, from the same call as the predictions.
    flat, found = model.outputs(
        columns, probabilities or (estimate and model.calibrates_probabilities)
    )
    shares = found.tolist() if probabilities else []
    calibrated = calibrated_of(model, columns, found) if estimate else None
    out = Predicted(batches=[columns])
    start = 0
    for m in messages:
        end = start + len(m.records)
        out.values[m.message_id] = flat[start:end]
        out.rows[m.message_id] = (0, start, end)
        if probabilities:
            out.probabilities[m.message_id] = shares[start:end]
        if calibrated is not None:
            out.calibrated[m.message_id] = calibrated[start:end]
        start = end
    return out


def calibrated_of(model: LoadedModel, columns: Batch, found: np.ndarray) -> np.ndarray | None:
    """The rows' calibrated probabilities; None (logged) if they cannot be had: an estimate is
    monitoring's, and never fails a prediction."""
    try:
        return model.calibrated(columns, found if model.calibrates_probabilities else None)
    except Exception as error:  # the estimate is left out of the window, the rows still go
        log.warning("no estimate for this batch",
                    extra={"model": model.api_name, "version": model.version,
                           "error": f"{type(error).__name__}: {error}"})  # fmt: skip
        return None


def predict_each(
    model: LoadedModel, messages: Sequence[Message], probabilities: bool, estimate: bool = False
) -> Predicted:
    """One predict call per message, so one bad message fails alone."""
    out = Predicted()
    for m in messages:
        try:
            one = predict_all(model, [m], probabilities, estimate)
        except Exception as error:  # the model's error becomes the message's
            out.errors[m.message_id] = f"prediction failed: {type(error).__name__}: {error}"
            continue
        out.values.update(one.values)
        out.probabilities.update(one.probabilities)
        out.calibrated.update(one.calibrated)
        out.rows[m.message_id] = (len(out.batches), *one.rows[m.message_id][1:])
        out.batches.append(one.batches[0])
    return out


def rows_of(
    model: LoadedModel, messages: Sequence[Message], predicted: Predicted, at_ms: int,
    explained: Explaining | None = None, reasons: int = 0,
) -> list[Row]:  # fmt: skip
    """One row per record of the messages (with `reasons` reason codes where explained)."""
    rows = []
    for m in messages:
        values = predicted.values[m.message_id]
        shares = predicted.probabilities.get(m.message_id) or [()] * len(values)
        found = explained.reasons(m.message_id, reasons) if explained and reasons else None
        codes = [_flat(r) for r in found] if found else [()] * len(values)
        for index, (record, value, proba, code) in enumerate(
            zip(m.records, values, shares, codes, strict=True)
        ):
            rows.append(Row(m.message_id, index, model.api_name, model.registered_name,
                            model.version, value, m.received_at, at_ms, record, proba, (),
                            code))  # fmt: skip
    return rows


class Explaining(Protocol):
    """What rows read of a batch's explanations (streamfn.infer.explaining.Explained)."""

    def reasons(self, message_id: str, count: int) -> list[list[tuple[str, float]]] | None: ...


def _flat(reasons: list[tuple[str, float]]) -> tuple[Any, ...]:
    """A record's reason codes as its row's cells: the names, then the contributions."""
    return (*(name for name, _ in reasons), *(value for _, value in reasons))


def rows_in(predicted: Predicted, messages: list[Message]) -> tuple[Batch, list[Any]]:
    """The input columns and predictions of these messages (the whole batch when they are
    all)."""
    places = [predicted.rows[m.message_id] for m in messages]
    values = [v for m in messages for v in predicted.values[m.message_id]]
    batch_index = {b for b, _, _ in places}
    if len(batch_index) == 1:
        batch = predicted.batches[batch_index.pop()]
        if sum(end - start for _, start, end in places) == size(batch):
            return batch, values
    return join([take(predicted.batches[b], start, end) for b, start, end in places]), values


def calibrated_in(predicted: Predicted, messages: list[Message]) -> np.ndarray | None:
    """The calibrated probabilities of these messages' rows, None unless every one has them."""
    if not messages or any(m.message_id not in predicted.calibrated for m in messages):
        return None
    return np.concatenate([predicted.calibrated[m.message_id] for m in messages])
