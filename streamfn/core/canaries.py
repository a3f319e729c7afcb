"""Each model's canary as kept in Redis: which challenger version serves what share of the
model's messages, the step it has reached and the latest decision.

`streamfn canary` writes it (and mirrors it in the challenger version's MLflow tags, the record
a restarted command falls back on); the infer function reads the share, and GET /models, the
console and `streamfn monitor` show it. A share is for one challenger version: a new challenger
starts from CANARY_SHARE again, whatever the previous one reached. `rollbacks` counts every
rollback the canary made of the model, ever (the Prometheus counter the pollers publish).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

WIDENING = "widening"  # serving the share of a step, judged window by window
ROLLED_BACK = "rolled back"  # a threshold was crossed: share 0
PROMOTED = "promoted"  # the last step held and promote's gate passed
REFUSED = "refused"  # the last step held and promote's gate refused: share 0
STATUSES = (WIDENING, ROLLED_BACK, PROMOTED, REFUSED)
ROLLBACKS = "rollbacks"  # the hash field counted with HINCRBY, never overwritten


@dataclass(frozen=True)
class Canary:
    """One model's canary: the share `version` serves, where it is, why it stopped."""

    version: str  # the challenger version the share is for
    share: float
    status: str = WIDENING
    step: int = 0  # the index of the step reached in `steps`
    steps: tuple[float, ...] = ()
    every_s: float = 0.0
    since_ms: int = 0  # when this share began (epoch ms)
    reason: str = ""  # why it stopped, or what the last window said
    updated_ms: int = 0
    rollbacks: int = field(default=0, compare=False)

    @property
    def running(self) -> bool:
        """Whether the canary is still widening (a restarted command resumes it)."""
        return self.status == WIDENING

    def share_for(self, version: str | None) -> float | None:
        """The share this canary gives `version`, None when it is about another version."""
        return self.share if version is not None and version == self.version else None

    def to_hash(self) -> dict[str, str]:
        """Its fields as Redis keeps them (the rollbacks count apart: it is only ever added to)."""
        found = asdict(self)
        found.pop(ROLLBACKS)
        found["steps"] = orjson.dumps(list(self.steps)).decode()
        return {k: str(v) for k, v in found.items()}

    def to_json(self) -> dict[str, Any]:
        """Its fields as the API answers them."""
        return {**asdict(self), "steps": list(self.steps)}

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> Canary | None:
        """A canary read back from its Redis hash (or a tag's JSON); None when there is none."""
        found = {_text(k): _text(v) for k, v in raw.items()}
        if "version" not in found or "share" not in found:
            return None
        steps = found.get("steps") or "[]"
        return cls(
            version=found["version"], share=float(found["share"]),
            status=found.get("status", WIDENING), step=int(found.get("step", 0)),
            steps=tuple(float(s) for s in orjson.loads(steps)),
            every_s=float(found.get("every_s", 0)), since_ms=int(found.get("since_ms", 0)),
            reason=found.get("reason", ""), updated_ms=int(found.get("updated_ms", 0)),
            rollbacks=int(found.get(ROLLBACKS, 0)),
        )  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def share_of(canary: Canary | None, challenger: str | None, default: float) -> float:
    """The share of a model's messages its challenger serves: the canary's, for that version,
    else CANARY_SHARE (`default`); 0 without a challenger."""
    if challenger is None:
        return 0.0
    found = canary.share_for(challenger) if canary is not None else None
    return default if found is None else found
