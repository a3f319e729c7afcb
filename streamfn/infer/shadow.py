"""Shadow scoring: the challenger predicts a share of each batch beside the champion.

Its rows go to `shadow/model=<api name>/date=<day>/…` with the champion's version and prediction,
through the same exactly-once protocol as the champion's rows (states under shadow keys), and
before the messages are recorded done: a message done has its shadow rows too. A challenger that
fails never fails the batch or touches a champion row: the batch goes on without shadow rows.
Which messages are scored depends only on their ids, so a redelivery is scored again or not.
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
    """What the challenger said of the messages it scored: for the window counts."""

    challenger: LoadedModel
    values: dict[str, list[Any]]  # message id -> one prediction per record
    # message id -> its records' calibrated probabilities, when the challenger has a calibration
    calibrated: dict[str, np.ndarray] = field(default_factory=dict)

    def calibrated_in(self, messages: Sequence[Message]) -> np.ndarray | None:
        """The challenger's calibrated probabilities of these messages' rows, if all have them."""
        if not messages or any(m.message_id not in self.calibrated for m in messages):
            return None
        return np.concatenate([self.calibrated[m.message_id] for m in messages])


class ShadowScorer:
    """Scores a model's messages with its challenger and writes the shadow rows once."""

    def __init__(
        self, challengers: ChallengerCache, writer: OnceWriter, share: float, ttl_s: int,
        estimate: bool = False,
    ) -> None:  # fmt: skip
        self.challengers = challengers
        self.writer = writer
        self.share = share
        self.ttl_s = ttl_s
        self.estimate = estimate  # calibrated probabilities too, for the window's estimates

    def score(
        self, champion: LoadedModel, messages: Sequence[Message], predicted: Predicted
    ) -> Shadow | None:
        """Shadow rows for the chosen messages not written yet; None without a challenger (or
        when it failed). An outage of S3 or Redis is raised, as for the champion's rows."""
        challenger = self.challengers.get(champion.api_name)
        if challenger is None or challenger.version == champion.version:
            return None
        chosen = [m for m in messages if selected(m.message_id, self.share)]
        if not chosen:
            return None
        found = self.writer.already_written([m.message_id for m in chosen])
        fresh = [m for m in chosen if m.message_id not in found]
        at_ms = now_ms()
        try:
            # All chosen messages, not only the fresh ones: the window counts need them all.
            scored = challenger_values(challenger, champion, chosen, predicted, self.estimate)
            values = scored.values
            rows = shadow_rows(champion, challenger, fresh, predicted, values, at_ms)
            body = self.writer.encode(SHADOW, challenger.schema, rows)
        except Exception as error:  # the challenger's own failure: never the batch's
            self.challengers.drop(challenger, error)
            return None
        if fresh:
            ids = [m.message_id for m in fresh]
            written = self.writer.write(SHADOW, champion.api_name, ids, body, at_ms,
                                        object_metadata(challenger.runtime_name))  # fmt: skip
            states = [(m.message_id, message_state.done(champion.api_name, challenger.version,
                                                        values[m.message_id], written.uri))
                      for m in fresh]  # fmt: skip
            message_state.save(self.writer.redis, states, self.ttl_s, self.writer.key)
            metrics.SHADOW_RECORDS.labels(champion.api_name).inc(sum(len(m.records) for m in fresh))
        return Shadow(challenger, values, scored.calibrated)


def challenger_values(
    challenger: LoadedModel, champion: LoadedModel, messages: Sequence[Message],
    predicted: Predicted, estimate: bool = False,
) -> Predicted:  # fmt: skip
    """The challenger's predictions per message (with `estimate`, its calibrated probabilities
    too): on the champion's own input columns when both take the same inputs (shadow scoring
    then costs the challenger's predict, not a second build; the columns suit either runtime, so
    the two may be served by different ones), else on columns of its own inputs."""
    if challenger.schema.columns != champion.schema.columns:
        return predict_all(challenger, messages, probabilities=False, estimate=estimate)
    columns, _ = rows_in(predicted, list(messages))
    estimate = estimate and challenger.calibration is not None
    flat, found = challenger.outputs(columns, estimate and challenger.calibrates_probabilities)
    calibrated = calibrated_of(challenger, columns, found) if estimate else None
    out, start = Predicted(), 0
    for m in messages:
        end = start + len(m.records)
        out.values[m.message_id] = flat[start:end]
        if calibrated is not None:
            out.calibrated[m.message_id] = calibrated[start:end]
        start = end
    return out


def shadow_rows(
    champion: LoadedModel, challenger: LoadedModel, messages: Sequence[Message],
    predicted: Predicted, values: dict[str, list[Any]], at_ms: int,
) -> list[Row]:  # fmt: skip
    """One row per record: the challenger's prediction, then the champion's version and one."""
    rows = []
    for m in messages:
        pairs = zip(m.records, values[m.message_id], predicted.values[m.message_id], strict=True)
        for index, (record, value, champion_value) in enumerate(pairs):
            rows.append(Row(m.message_id, index, champion.api_name, challenger.registered_name,
                            challenger.version, value, m.received_at, at_ms, record, (),
                            (champion.version, champion_value)))  # fmt: skip
    return rows
