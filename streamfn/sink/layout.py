"""The bucket's layout: the one place its keys are spelled, built by `object_key` and
`window_key`, read back by `parse_key`.

Keys are Hive-partitioned, `<kind>/model=<api name>/date=<YYYY-MM-DD>/<name><suffix>`:
- row objects (`predictions/`, a challenger's `shadow/`): one per model per batch, named
  `<first message id>_<16 hex digits of the hash of all its ids>` and suffixed by their format;
- monitoring windows (`monitoring/`): `<window start>_v<version>.json`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from streamfn.core import stream_ids
from streamfn.core.message_ids import key_part

PREDICTIONS = "predictions"
SHADOW = "shadow"
MONITORING = "monitoring"
ROW_KINDS = (PREDICTIONS, SHADOW)
WINDOW_SUFFIX = ".json"
WINDOW_CONTENT_TYPE = "application/json"

# 64 bits of SHA-256: collisions are negligible for any number of batches a bucket will hold.
_DIGEST_HEX = 16
_SAFE = "A-Za-z0-9._-"
_UNSAFE_KEY_CHARS = re.compile(f"[^{_SAFE}]")
_KEY = re.compile(
    rf"(?P<kind>{PREDICTIONS}|{SHADOW}|{MONITORING})/model=(?P<model>[{_SAFE}]+)"
    rf"/date=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})/(?P<name>[{_SAFE}]+?)(?P<suffix>\.[a-z]+)"
)
_ROW_NAME = re.compile(rf"(?P<first>[{_SAFE}]+)_[0-9a-f]{{{_DIGEST_HEX}}}")
_WINDOW_NAME = re.compile(r"(?P<start>[0-9]+)_v(?P<version>[0-9A-Za-z.-]+)")


def prefix(kind: str, model: str | None = None, day: dt.date | str | None = None) -> str:
    """Where a kind's keys start: of one model, of one model and date."""
    found = f"{kind}/"
    if model is not None:
        found += f"model={model}/"
        if day is not None:
            found += f"date={_day(day)}/"
    return found


def _day(day: dt.date | str) -> str:
    # strftime, not isoformat: a datetime passed as `day` must still give a bare date.
    return day if isinstance(day, str) else day.strftime("%Y-%m-%d")


def object_key(
    kind: str, api_name: str, day: dt.date, message_ids: Sequence[str], suffix: str
) -> str:
    """The key of a row object holding these messages' rows, whatever their order."""
    if not api_name or _UNSAFE_KEY_CHARS.search(api_name):
        raise ValueError(f"model name {api_name!r} cannot be a key partition")
    ids = sorted(set(message_ids), key=stream_ids.order_any)
    if not ids:
        raise ValueError("an object needs at least one message id")
    # JSON of the sorted list is unambiguous whatever characters the ids contain.
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:_DIGEST_HEX]
    return f"{prefix(kind, api_name, day)}{key_part(ids[0])}_{digest}{suffix}"


def window_key(model: str, version: str, start: int) -> str:
    """The key of one window's statistics: a window in which the champion moved has counts
    for two versions, each its own object."""
    day = dt.datetime.fromtimestamp(start, dt.UTC).date()
    return f"{prefix(MONITORING, model, day)}{start}_v{version}{WINDOW_SUFFIX}"


@dataclass(frozen=True)
class Place:
    """What a key says: its kind, model, date and name (without the suffix), and its suffix."""

    kind: str
    model: str
    day: str
    name: str
    suffix: str

    @property
    def first_message_id(self) -> str | None:
        """A row object's first message id as its name carries it (None: not a row object)."""
        found = _ROW_NAME.fullmatch(self.name) if self.kind in ROW_KINDS else None
        return found["first"] if found else None

    @property
    def window(self) -> tuple[int, str] | None:
        """A monitoring window's start and version (None: not a window's key)."""
        found = _WINDOW_NAME.fullmatch(self.name) if self.kind == MONITORING else None
        return (int(found["start"]), found["version"]) if found else None


def parse_key(key: str) -> Place | None:
    """What a key of this layout says (None: a key this layout never makes). A row object's
    key must have a row object's name, a window's a window's name."""
    found = _KEY.fullmatch(key)
    if found is None:
        return None
    place = Place(found["kind"], found["model"], found["day"], found["name"], found["suffix"])
    if place.kind == MONITORING:
        return place if place.window is not None and place.suffix == WINDOW_SUFFIX else None
    return place if place.first_message_id is not None else None
