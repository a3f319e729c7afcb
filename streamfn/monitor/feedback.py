"""Ground truth: labels joined to the predictions they judge, each counted once.

A label names a message and a record of it, and the true class: a label (`High`), a class
(`2`), or for the seed's models a `burn_rate` binned as the training binned it. It is joined to
the stored prediction while the message's result is kept (RESULT_TTL_S) and counted in the
window of that prediction as one cell of a confusion matrix, so that accuracy and macro F1
follow per version and window. A label sent again is not counted again: each (message, record)
keeps the first label it got. A later label that differs from it is not taken either (a label
cannot be overwritten by whoever sends the next one) but it is told apart from a resend: counted
as a conflict, answered and logged, so that a labelling error or a poisoning attempt shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamfn.core import message_state, stream_ids
from streamfn.core.connections import AsyncClient
from streamfn.core.keys import Keys
from streamfn.core.settings import Settings
from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import burn_class
from streamfn.monitor.windowing import shadow_prefix, window_of

# KEYS: per label, its message's labels hash and its window hash. ARGV: ttl, then per label:
# record index, true class, predicted class, and for a shadow-scored record the challenger's
# field prefix (s:<version>:) and its predicted class ('' and '' otherwise). Returns how many
# were counted (not seen before), and the positions (1-based) of those whose record holds
# another label already.
_COUNT_ONCE = """
local ttl, counted, conflicts = tonumber(ARGV[1]), 0, {}
for i = 1, #KEYS / 2 do
  local labels, window = KEYS[2 * i - 1], KEYS[2 * i]
  local at = 5 * i - 3
  local index, truth, predicted = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local shadow, challenged = ARGV[at + 3], ARGV[at + 4]
  if redis.call('HSETNX', labels, index, truth) == 1 then
    redis.call('EXPIRE', labels, ttl)
    -- A window past its retention, or never counted (monitoring off), gets no cell: one made
    -- here would have no TTL. The label is still kept, once.
    if redis.call('EXISTS', window) == 1 then
      redis.call('HINCRBY', window, 'l:' .. truth .. ':' .. predicted, 1)
      if shadow ~= '' then
        redis.call('HINCRBY', window, shadow .. 'l:' .. truth .. ':' .. challenged, 1)
        redis.call('HINCRBY', window, shadow .. 'k:' .. truth .. ':' .. predicted, 1)
      end
    end
    counted = counted + 1
  elseif redis.call('HGET', labels, index) ~= truth then
    table.insert(conflicts, i)
  end
end
return {counted, conflicts}
"""


class FeedbackError(ValueError):
    """Labels that cannot be joined; `errors` name each (FastAPI-shaped)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "bad labels")
        self.errors = errors


@dataclass(frozen=True)
class Joined:
    """One label joined to its prediction."""

    message_id: str
    record_index: int
    truth: str
    predicted: str
    window: str  # the window hash of the prediction
    shadow: tuple[str, str] = ("", "")  # the challenger's field prefix and prediction, if any


def _error(index: int, field: str, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", "labels", index, field], "msg": f"label {index}: {msg}",
            "type": type_}  # fmt: skip


def truth_of(item: dict[str, Any], schema: ModelSchema) -> str | None:
    """The true class a label gives, as the model's classes are written; None if it gives none."""
    if "burn_rate" in item:
        rate = item["burn_rate"]
        if not schema.seed_layout or type(rate) not in (int, float) or not 0 <= rate <= 1:
            return None
        return str(burn_class(float(rate)))
    label = item.get("label")
    if type(label) is bool or not isinstance(label, str | int):
        return None
    by_label = {v.lower(): k for k, v in schema.labels.items()}
    text = str(label)
    return by_label.get(text.lower()) or (
        text if text in schema.labels or not schema.labels else None
    )


def check(body: object) -> list[dict[str, Any]]:
    """The labels of a POST /feedback body, or FeedbackError saying what is wrong."""
    if type(body) is not dict or set(body) != {"labels"} or type(body["labels"]) is not list:
        shape = '{"labels": [{"message_id", "record_index", "label" or "burn_rate"}, ...]}'
        msg = f"the body must be {shape}"
        raise FeedbackError([{"loc": ["body"], "type": "dict_type", "msg": msg}])
    labels = body["labels"]
    if not labels:
        raise FeedbackError([{"loc": ["body", "labels"], "type": "too_short",
                              "msg": "'labels' must hold at least one label"}])  # fmt: skip
    errors = []
    for i, item in enumerate(labels):
        if type(item) is not dict or type(item.get("message_id")) is not str:
            errors.append(_error(i, "message_id", "needs a message_id (string)", "missing"))
        elif type(item.get("record_index")) is not int or item["record_index"] < 0:
            errors.append(_error(i, "record_index", "needs a record_index (0 or more)", "missing"))
        elif ("label" in item) == ("burn_rate" in item):
            errors.append(_error(i, "label", "give a label or a burn_rate, one of them", "missing"))
    if errors:
        raise FeedbackError(errors)
    return labels


async def join(
    redis: AsyncClient,
    labels: list[dict[str, Any]],
    schemas: dict[str, ModelSchema],
    settings: Settings,
) -> list[Joined]:
    """Each label joined to its stored prediction; FeedbackError naming those that cannot be."""
    ids = [item["message_id"] for item in labels]
    # Each message's result and its shadow result (the challenger's), in one round trip (GETs,
    # not MGET: on a Redis Cluster the messages' keys are in their partitions' slots).
    async with redis.pipeline(transaction=False) as pipe:
        keys = settings.keys
        for key in [*map(keys.result, ids), *map(keys.shadow, ids)]:
            pipe.get(key)
        found = await pipe.execute()
    states = [message_state.decode(raw) for raw in found[: len(ids)]]
    shadows = [message_state.decode(raw) for raw in found[len(ids) :]]
    unknown = [item["message_id"] for item, state in zip(labels, states, strict=True) if not state]
    models = await message_state.queued(redis, settings.streams, unknown) if unknown else []
    queued = dict(zip(unknown, models, strict=True))
    joined, errors = [], []
    for i, (item, state, shadow) in enumerate(zip(labels, states, shadows, strict=True)):
        predictions = state.get("predictions")
        if queued.get(item["message_id"]):
            state = {"status": "pending"}
        if not state:
            why = "unknown message id, or its result expired"
            errors.append(_error(i, "message_id", f"{item['message_id']!r}: {why}", "not_found"))
            continue
        if state.get("status") != "done" or not predictions:
            why = f"not predicted ({state.get('status')}): send it again once it is done"
            errors.append(_error(i, "message_id", f"{item['message_id']!r}: {why}", "not_ready"))
            continue
        if item["record_index"] >= len(predictions):
            msg = (f"record_index {item['record_index']} out of range: the message has "
                   f"{len(predictions)} record(s)")  # fmt: skip
            errors.append(_error(i, "record_index", msg, "out_of_range"))
            continue
        schema = schemas.get(state.get("model", ""))
        truth = truth_of(item, schema) if schema and schema.output == "class" else None
        if truth is None:
            errors.append(_error(i, "label", "not a class of this model", "enum"))
            continue
        received = state.get("received_at") or stream_ids.millis(item["message_id"])
        window = keys.window(state["model"], str(state["model_version"]),
                             window_of(received, settings.MONITOR_WINDOW_S))  # fmt: skip
        joined.append(Joined(item["message_id"], item["record_index"], truth,
                             str(predictions[item["record_index"]]), window,
                             challenged(shadow, item["record_index"])))  # fmt: skip
    if errors:
        raise FeedbackError(errors)
    return joined


def challenged(shadow: message_state.MessageState, record_index: int) -> tuple[str, str]:
    """The challenger's field prefix and prediction of a record, ("", "") if it was not scored."""
    predictions = shadow.get("predictions") or []
    if shadow.get("status") != "done" or record_index >= len(predictions):
        return "", ""
    return shadow_prefix(str(shadow["model_version"])), str(predictions[record_index])


@dataclass(frozen=True)
class Counted:
    """What became of joined labels: new ones counted, resends, and conflicts (a record that
    holds another label already: that one is kept)."""

    counted: int
    repeated: int
    conflicts: list[Joined]


async def count_once(redis: AsyncClient, keys: Keys, joined: list[Joined], ttl_s: int) -> Counted:
    """Count each label not counted before; tell resends from conflicting labels."""
    names, args = [], [ttl_s]
    for label in joined:
        names += [keys.labels(label.message_id), label.window]
        args += [label.record_index, label.truth, label.predicted, *label.shadow]
    counted, positions = await redis.eval(_COUNT_ONCE, len(names), *names, *args)
    conflicts = [joined[int(i) - 1] for i in positions]
    return Counted(int(counted), len(joined) - int(counted) - len(conflicts), conflicts)
