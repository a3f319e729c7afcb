"""Reason codes for the messages EXPLAIN_SHARE takes, and what they add to a window.

For each record of a chosen message: the OUTPUT_EXPLANATIONS inputs that pushed most towards its
prediction, with their contributions (streamfn.models.explain: exact TreeSHAP from the native
model, whatever runtime predicted, summed back to the user's inputs). They go into the record's
row (`reason_1..N`, `contribution_1..N`), its result (GET /predictions), and the window's
attribution sums (the attribution drift). A version without exact attribution gets none (said
once in the log), and an explanation that fails is logged and left out: never a prediction's
failure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from streamfn.core.shares import in_share
from streamfn.infer.messages import Message
from streamfn.infer.predicting import Predicted, rows_in
from streamfn.models.loaded import LoadedModel

log = logging.getLogger(__name__)

PURPOSE = "explain:"  # salts the share's hash: not the same messages as the shadow share's


@dataclass(frozen=True)
class Explained:
    """The contributions of the explained messages' records, per message (rows x inputs)."""

    inputs: tuple[str, ...]
    contributions: dict[str, np.ndarray] = field(default_factory=dict)

    def reasons(self, message_id: str, count: int) -> list[list[tuple[str, float]]] | None:
        """Per record of the message, its `count` strongest inputs and their contributions,
        largest first (None for a message that was not explained)."""
        found = self.contributions.get(message_id)
        if found is None:
            return None
        order = np.argsort(-found, axis=1, kind="stable")[:, :count]
        return [[(self.inputs[j], float(found[i, j])) for j in row]
                for i, row in enumerate(order)]  # fmt: skip

    def of(self, messages: Sequence[Message]) -> np.ndarray | None:
        """The contributions of these messages' explained records, one after the other."""
        parts = [self.contributions[m.message_id] for m in messages
                 if m.message_id in self.contributions]  # fmt: skip
        return np.concatenate(parts) if parts else None


def chosen(messages: Sequence[Message], share: float) -> list[Message]:
    """The messages EXPLAIN_SHARE takes (by a hash of the id: the same on redelivery)."""
    return [m for m in messages if in_share(m.message_id, share, PURPOSE)]


def explain(
    model: LoadedModel, messages: Sequence[Message], predicted: Predicted, count: int,
    share: float,
) -> Explained | None:  # fmt: skip
    """The contributions of the chosen messages' records (None when explanations are off or the
    version has none)."""
    if count <= 0 or share <= 0:
        return None
    explainer = model.explainer
    if explainer is None:
        return None
    taken = [m for m in chosen(messages, share) if m.message_id in predicted.values]
    found = Explained(explainer.inputs)
    if not taken:
        return found
    columns, values = rows_in(predicted, taken)
    try:
        contributions = explainer.contributions(pd.DataFrame(columns), _positions(model, values))
    except Exception as error:  # an explanation is never a prediction's failure
        log.warning("no reason codes for this batch",
                    extra={"model": model.api_name, "version": model.version,
                           "error": f"{type(error).__name__}: {error}"})  # fmt: skip
        return None
    start = 0
    for m in taken:
        end = start + len(m.records)
        found.contributions[m.message_id] = contributions.values[start:end]
        start = end
    return found


def _positions(model: LoadedModel, values: list[object]) -> np.ndarray:
    """Each prediction's position among the model's classes (0 for a regressor)."""
    if model.schema.output == "number":
        return np.zeros(len(values), dtype=int)
    position = {str(c): i for i, c in enumerate(model.classes)}
    return np.asarray([position[str(v)] for v in values], dtype=int)
