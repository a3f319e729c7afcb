"""What the producer is asked to send, how fast, and what became of every record."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from streamfn.core.settings import Settings

KEPT_ERRORS = 5
MAX_RETRY_AFTER_S = 30.0
# A rate that falls further behind than this stops trying to catch up (no bursts after a stall).
MAX_DEBT_S = 1.0


@dataclass(frozen=True)
class Plan:
    """What to send: how many records (None: until stopped), how fast, which models, how."""

    count: int | None = None
    rate: float | None = None
    models: tuple[str, ...] = ()  # none: every model of MODELS
    batch: int = 100
    seed: int | None = None
    concurrency: int = 4
    give_up_s: float = 60.0
    drift: str = ""  # "Feature=+x,Other=*y": shift or scale these inputs of every record
    labels: bool = False  # also POST /feedback with each record's label
    # The labels of drifted records: "drawn" (as drawn for the unmoved record) or "follow" (the
    # moved inputs' labels, by the dataset's relation).
    drift_labels: str = "drawn"
    concept: str = ""  # "Feature=+x": labels as if these inputs moved, inputs as drawn

    def __post_init__(self) -> None:
        if self.count is None and self.rate is None:
            raise ValueError("give a count, a rate, or both")
        for name in ("count", "rate", "batch", "concurrency"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if self.drift_labels not in ("drawn", "follow"):
            raise ValueError(f"drift_labels must be drawn or follow, not {self.drift_labels!r}")

    def models_of(self, settings: Settings) -> tuple[str, ...]:
        """The models to send to: the plan's, or every model of MODELS; ValueError if unknown."""
        unknown = [m for m in self.models if m not in settings.models]
        if unknown:
            valid = ", ".join(settings.models)
            raise ValueError(f"models must be among {valid}; got {', '.join(unknown)}")
        return self.models or tuple(settings.models)


@dataclass
class Tally:
    """What happened to the records so far; every record sent ends in exactly one outcome."""

    requests: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    undelivered: int = 0
    retries: int = 0
    throttled: int = 0
    behind_s: float = 0.0  # time a --rate lost because sending could not keep up
    labelled: int = 0  # labels the ingest counted (POST /feedback)
    unlabelled: int = 0  # labels it could not join within give_up_s
    no_label: int = 0  # accepted records drawn without a label (no Burn Rate): none is posted
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    last_accepted: float | None = None  # monotonic time of the last 202
    finished: float | None = None

    @property
    def in_flight(self) -> int:
        """Records sent whose outcome is not known yet."""
        return self.sent - self.accepted - self.rejected - self.undelivered

    @property
    def seconds(self) -> float:
        """Time since the first request (to the end, once finished)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Accepted records per second."""
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def keep_error(self, text: str) -> None:
        """Remember the first few distinct errors for the summary."""
        if len(self.errors) < KEPT_ERRORS and text not in self.errors:
            self.errors.append(text)

    def as_dict(self) -> dict[str, Any]:
        """The counts, for a log line or a Lambda answer."""
        return {
            "requests": self.requests,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "undelivered": self.undelivered,
            "retries": self.retries,
            "throttled": self.throttled,
            "behind_s": round(self.behind_s, 3),
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "no_label": self.no_label,
            "seconds": round(self.seconds, 3),
            "records_per_s": round(self.rate, 1),
            "errors": self.errors,
        }


def retry_after_s(answer: httpx.Response) -> float | None:
    """The Retry-After of an answer in seconds (delta or HTTP date), capped; None if absent."""
    value = answer.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Pacer:
    """Spaces requests so that records leave at `rate` per second (None: no pacing)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._next: float | None = None
        self.behind_s = 0.0  # time lost because sending could not keep up

    def delay(self, records: int) -> float:
        """Seconds to wait before sending `records` records; books their slot."""
        if self.rate is None:
            return 0.0
        now = self.clock()
        if self._next is None:
            self._next = now
        if now - self._next > MAX_DEBT_S:
            self.behind_s += now - self._next
            self._next = now
        wait = max(self._next - now, 0.0)
        self._next += records / self.rate
        return wait


# A scheduled event (EventBridge) carries none of the plan's keys: it sends this many records.
EVENT_DEFAULT_COUNT = 100
# A Lambda invocation stops sending this long before its timeout, to answer with its tally.
LAMBDA_MARGIN_S = 5.0


def plan_from_event(event: dict[str, Any]) -> Plan:
    """The plan of a producer event: count, rate, models, batch, seed, concurrency, drift,
    labels, drift_labels, concept (all optional)."""
    models = event.get("models", ())
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    rate = event.get("rate")
    return Plan(
        count=int(event.get("count", EVENT_DEFAULT_COUNT)),
        rate=float(rate) if rate is not None else None,
        models=tuple(models),
        batch=int(event.get("batch", Plan.batch)),
        seed=int(event["seed"]) if event.get("seed") is not None else None,
        concurrency=int(event.get("concurrency", Plan.concurrency)),
        drift=str(event.get("drift", "")),
        labels=bool(event.get("labels", False)),
        drift_labels=str(event.get("drift_labels", "drawn")),
        concept=str(event.get("concept", "")),
    )
