"""Shadow scoring: the other version predicts a share of the messages one version served.

For the champion's messages the other is the challenger, for a SHADOW_SHARE of them; for the
canary's messages (streamfn.infer.canary) it is the champion, for every one of them: one code
path in both directions. The shadow rows go to `shadow/model=<api name>/date=<day>/…` with the
served row's version and prediction (columns `champion_version`, `champion_prediction`: the
champion's, or for a canary row the challenger's that served it), through the same exactly-once
protocol as the served rows (states under shadow keys), and before the messages are recorded
done: a message done has its shadow rows too. A version that fails in shadow never fails the
batch or touches a served row: the batch goes on without shadow rows. Which messages are scored
depends only on their ids, so a redelivery is scored again or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamfn.core import message_state, metrics
from streamfn.core.clock import now_ms
from streamfn.core.shares import in_share
from streamfn.infer.messages import Message
from streamfn.infer.predicting import Predicted, calibrated_of, predict_all, rows_in
from streamfn.models.challengers import ChallengerCache
from streamfn.models.loaded import LoadedModel
from streamfn.sink.layout import SHADOW
from streamfn.sink.once import OnceWriter
from streamfn.sink.rows import Row, object_metadata


def selected(message_id: str, share: float) -> bool:
    """Whether a message falls in the shadow share (by a hash of its id)."""
    return in_share(message_id, share)


@dataclass(frozen=True)
class Shadow:
    """What the version in shadow said of the messages it scored: for the window counts."""

    other: LoadedModel  # the version in shadow: the challenger, or the canary's champion
    values: dict[str, list[Any]]  # message id -> one prediction per record
    # message id -> its records' calibrated probabilities, when that version has a calibration
    calibrated: dict[str, np.ndarray] = field(default_factory=dict)

    def calibrated_in(self, messages: Sequence[Message]) -> np.ndarray | None:
        """Its calibrated probabilities of these messages' rows, if all have them."""
        if not messages or any(m.message_id not in self.calibrated for m in messages):
            return None
        return np.concatenate([self.calibrated[m.message_id] for m in messages])


class ShadowScorer:
    """Scores a model's served messages with the other version and writes the shadow rows once."""

    def __init__(
        self, challengers: ChallengerCache, writer: OnceWriter, share: float, ttl_s: int,
        estimate: bool = False,
    ) -> None:  # fmt: skip
        self.challengers = challengers
        self.writer = writer
        self.share = share  # SHADOW_SHARE: of the champion's messages
        self.ttl_s = ttl_s
        self.estimate = estimate  # calibrated probabilities too, for the window's estimates

    def score(
        self, served: LoadedModel, other: LoadedModel | None, messages: Sequence[Message],
        predicted: Predicted, share: float,
    ) -> Shadow | None:  # fmt: skip
        """Shadow rows by `other` for the chosen messages not written yet; None without another
        version (or when it failed). An outage of S3 or Redis is raised, as for served rows."""
        if other is None or other.version == served.version:
            return None
        chosen = [m for m in messages if selected(m.message_id, share)]
        if not chosen:
            return None
        found = self.writer.already_written([m.message_id for m in chosen])
        fresh = [m for m in chosen if m.message_id not in found]
        at_ms = now_ms()
        try:
            # All chosen messages, not only the fresh ones: the window counts need them all.
            scored = shadow_values(other, served, chosen, predicted, self.estimate)
            values = scored.values
            rows = shadow_rows(served, other, fresh, predicted, values, at_ms)
            body = self.writer.encode(SHADOW, other.schema, rows)
        except Exception as error:  # the other version's own failure: never the batch's
            self.challengers.drop(other, error)
            return None
        if fresh:
            ids = [m.message_id for m in fresh]
            written = self.writer.write(SHADOW, served.api_name, ids, body, at_ms,
                                        object_metadata(other.runtime_name),
                                        other.version)  # fmt: skip
            states = [(m.message_id, message_state.done(served.api_name, other.version,
                                                        values[m.message_id], written.uri))
                      for m in fresh]  # fmt: skip
            message_state.save(self.writer.redis, states, self.ttl_s, self.writer.key)
            metrics.SHADOW_RECORDS.labels(served.api_name).inc(sum(len(m.records) for m in fresh))
        return Shadow(other, values, scored.calibrated)


def shadow_values(
    other: LoadedModel, served: LoadedModel, messages: Sequence[Message], predicted: Predicted,
    estimate: bool = False,
) -> Predicted:  # fmt: skip
    """The other version's predictions per message (with `estimate`, its calibrated
    probabilities too): on the served version's own input columns when both take the same
    inputs (shadow scoring then costs the other's predict, not a second build; the columns suit
    either runtime, so the two may be served by different ones), else on columns of its own."""
    if other.schema.columns != served.schema.columns:
        return predict_all(other, messages, probabilities=False, estimate=estimate)
    columns, _ = rows_in(predicted, list(messages))
    estimate = estimate and other.calibration is not None
    flat, found = other.outputs(columns, estimate and other.calibrates_probabilities)
    calibrated = calibrated_of(other, columns, found) if estimate else None
    out, start = Predicted(), 0
    for m in messages:
        end = start + len(m.records)
        out.values[m.message_id] = flat[start:end]
        if calibrated is not None:
            out.calibrated[m.message_id] = calibrated[start:end]
        start = end
    return out


def shadow_rows(
    served: LoadedModel, other: LoadedModel, messages: Sequence[Message], predicted: Predicted,
    values: dict[str, list[Any]], at_ms: int,
) -> list[Row]:  # fmt: skip
    """One row per record: the other version's prediction, then the served version and its."""
    rows = []
    for m in messages:
        pairs = zip(m.records, values[m.message_id], predicted.values[m.message_id], strict=True)
        for index, (record, value, served_value) in enumerate(pairs):
            rows.append(Row(m.message_id, index, served.api_name, other.registered_name,
                            other.version, value, m.received_at, at_ms, record, (),
                            (served.version, served_value)))  # fmt: skip
    return rows
