"""What a batch adds to its monitoring windows: per window of `received_at`, the counts of its
rows (inputs, predictions), their expected confusion cells (a version with a calibration), the
attribution sums of its explained rows, its shadow rows' comparison, and the rows it served (or
failed to serve) as the canary; all merged in Redis in the step that records the messages done
(streamfn.monitor.recorder)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

from streamfn.infer.explaining import Explained
from streamfn.infer.messages import Message
from streamfn.infer.predicting import Predicted, calibrated_in, rows_in
from streamfn.infer.shadow import Shadow
from streamfn.models.loaded import LoadedModel
from streamfn.monitor.counts import (
    attribution_fields,
    batch_fields,
    estimated_fields,
    shadow_fields,
)
from streamfn.monitor.recorder import Window
from streamfn.monitor.windowing import CANARY_FAILED, CANARY_ROWS, shadow_prefix, window_of


def count_windows(
    model: LoadedModel, messages: list[Message], predicted: Predicted, window_s: float,
    shadow: Shadow | None = None, explained: Explained | None = None, canary: bool = False,
) -> list[Window]:  # fmt: skip
    """The monitoring counts of these messages' rows (and shadow rows), per window (none when
    monitoring is off); with `canary`, the rows are also counted as the canary's (`canary`)."""
    if not window_s or not messages:
        return []
    by_window: dict[int, list[Message]] = defaultdict(list)
    for m in messages:
        by_window[window_of(m.received_at, window_s)].append(m)
    windows = []
    for start, group in by_window.items():
        columns, values = rows_in(predicted, group)
        fields = batch_fields(model.schema, columns, values, model.profile)
        calibrated = calibrated_in(predicted, group)
        if calibrated is not None:
            fields.update(estimated_fields(calibrated, values, model.classes))
        contributions = explained.of(group) if explained is not None else None
        if contributions is not None:
            fields.update(attribution_fields(list(explained.inputs), contributions))  # type: ignore[union-attr]
        if shadow is not None:
            fields.update(compared(model, group, predicted, shadow))
        if canary:
            fields[CANARY_ROWS] = len(values)
        windows.append(Window(model.api_name, model.version, start, fields))
    return windows


def failed_canary(
    api_name: str, messages: list[Message], failed: Mapping[str, str], window_s: float
) -> list[Window]:
    """The rows of canary messages the challenger could not serve, counted in its version's
    window (`canary_failed`): its error rate, beside the rows it served (`canary`)."""
    if not window_s or not failed:
        return []
    counts: Counter[tuple[str, int]] = Counter()
    for m in messages:
        if m.message_id in failed:
            counts[(failed[m.message_id], window_of(m.received_at, window_s))] += len(m.records)
    return [Window(api_name, version, start, Counter({CANARY_FAILED: rows}))
            for (version, start), rows in counts.items()]  # fmt: skip


def compared(
    model: LoadedModel, messages: list[Message], predicted: Predicted, shadow: Shadow
) -> Counter[str]:
    """The comparison counts of these messages' shadow rows (none if none was scored)."""
    scored = [m for m in messages if m.message_id in shadow.values]
    if not scored:
        return Counter()
    ours = [v for m in scored for v in predicted.values[m.message_id]]
    theirs = [v for m in scored for v in shadow.values[m.message_id]]
    challenger = shadow.other
    counts = shadow_fields(challenger.version, ours, theirs, challenger.profile,
                           model.schema.output == "class")  # fmt: skip
    counts.update(estimated_pair(model, scored, predicted, shadow, ours, theirs))
    return counts


def estimated_pair(
    model: LoadedModel, scored: list[Message], predicted: Predicted, shadow: Shadow,
    ours: list[object], theirs: list[object],
) -> Counter[str]:  # fmt: skip
    """Both versions' expected confusion cells on the same shadow rows, `s:<v>:e:` the one in
    shadow's and `s:<v>:ke:` the served one's (when both have a calibration): what
    `streamfn promote --gate estimated` compares."""
    theirs_p = shadow.calibrated_in(scored)
    ours_p = calibrated_in(predicted, scored)
    if theirs_p is None or ours_p is None:
        return Counter()
    prefix = shadow_prefix(shadow.other.version)
    found = Counter(
        {prefix + k: n for k, n in estimated_fields(theirs_p, theirs, shadow.other.classes).items()}
    )
    found.update(
        {prefix + "k" + k: n for k, n in estimated_fields(ours_p, ours, model.classes).items()}
    )
    return found
