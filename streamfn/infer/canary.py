"""Which of a model's messages its challenger serves: the canary.

The share is CANARY_SHARE, or the one `streamfn canary` keeps in Redis for the challenger
version (streamfn.core.canaries), read at most every REFRESH_S by each process. The messages in
it are chosen by a hash of their id (salted, so they are not the shadow or explained share), so
a share that widens keeps the messages it had and a redelivery goes to the same version. A
message whose rows are in the bucket already (the crash came between the PUT and the done
record) goes back to the version that wrote them, whatever the share says now: its state and
its window counts must name the version of its rows.

A canary message the challenger cannot serve (it failed to load, or its predict fails on that
message) is served by the champion and counted against the challenger version (the window's
`canary_failed`): the error rate `streamfn canary` rolls back on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from streamfn.core import metrics
from streamfn.core.canaries import Canary, share_of
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys
from streamfn.core.shares import in_share
from streamfn.infer.messages import Message
from streamfn.models.cache import LoadedModel
from streamfn.models.challengers import ChallengerCache
from streamfn.sink.once import Found

log = logging.getLogger(__name__)

# A rollback reaches every process within this (and the batch each has in flight): one HGETALL
# a second per model with a challenger is nothing beside a batch's own round trips.
REFRESH_S = 1.0
PURPOSE = "canary:"


def chosen(message_id: str, share: float) -> bool:
    """Whether a message falls in the canary share (by a hash of its id)."""
    return in_share(message_id, share, PURPOSE)


@dataclass
class Route:
    """A model's messages of one batch: those its challenger serves, and the champion's."""

    champion: LoadedModel
    rest: list[Message]  # the champion serves these (failed canary messages included)
    challenger: LoadedModel | None = None
    canary: list[Message] = field(default_factory=list)
    # Canary messages no challenger could serve: message id -> the version that could not.
    failed: dict[str, str] = field(default_factory=dict)

    def fail_over(self, messages: Sequence[Message], version: str) -> None:
        """Canary messages the challenger could not predict: the champion serves them."""
        ids = {m.message_id for m in messages}
        self.canary = [m for m in self.canary if m.message_id not in ids]
        self.rest.extend(messages)
        self.failed.update(dict.fromkeys(ids, version))


class CanaryRouter:
    """Splits each model's messages between its champion and, for the canary, its challenger."""

    def __init__(
        self, redis: SyncClient, keys: Keys, default_share: float, challengers: ChallengerCache,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.redis = redis
        self.keys = keys
        self.default_share = default_share  # CANARY_SHARE
        self.challengers = challengers
        self.clock = clock
        self._read: dict[str, tuple[float, Canary | None]] = {}
        self._rollbacks: dict[str, int] = {}

    def canary(self, api_name: str) -> Canary | None:
        """The model's canary as Redis had it at most REFRESH_S ago (a Redis error is raised:
        the batch is retried, as for any outage)."""
        now = self.clock()
        read = self._read.get(api_name)
        if read is not None and now - read[0] < REFRESH_S:
            return read[1]
        found = Canary.from_hash(self.redis.hgetall(self.keys.canary(api_name)))
        self._read[api_name] = (now, found)
        self._count_rollbacks(api_name, found)
        return found

    def route(
        self, champion: LoadedModel, messages: Sequence[Message], found: Mapping[str, Found]
    ) -> Route:
        """Who serves each message: by the version that wrote its rows if any, else by share."""
        api_name = champion.api_name
        challenger = self.challengers.get(api_name)
        if challenger is not None and challenger.version == champion.version:
            challenger = None  # promoted, the alias not moved yet
        version = challenger.version if challenger else self.challengers.failing(api_name)
        share = share_of(self.canary(api_name) if version else None, version, self.default_share)
        if version is not None:
            self._publish(api_name, version, share)
        route = Route(champion, [], challenger)
        for m in messages:
            wrote = found[m.message_id].version if m.message_id in found else None
            if wrote == champion.version:
                route.rest.append(m)
            elif challenger is not None and wrote == challenger.version:
                route.canary.append(m)
            elif not share or not chosen(m.message_id, share):
                route.rest.append(m)
            elif challenger is not None:
                route.canary.append(m)
            else:  # chosen, and the challenger is not loaded: failed, served by the champion
                route.rest.append(m)
                route.failed[m.message_id] = str(version)
        return route

    def _publish(self, api_name: str, version: str, share: float) -> None:
        metrics.CANARY_SHARE.labels(api_name, version).set(share)
        canary = self._read.get(api_name, (0.0, None))[1]
        step = canary.step + 1 if canary and canary.running and canary.version == version else 0
        metrics.CANARY_STEP.labels(api_name, version).set(step)

    def _count_rollbacks(self, api_name: str, canary: Canary | None) -> None:
        """Publish the rollbacks Redis counts: what it added since this process last read it
        (all of them on the first read), so that the counter only ever grows."""
        total = canary.rollbacks if canary is not None else 0
        seen = self._rollbacks.get(api_name, 0)
        if total > seen:
            metrics.CANARY_ROLLBACKS.labels(api_name).inc(total - seen)
            self._rollbacks[api_name] = total
