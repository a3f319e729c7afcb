"""`streamfn canary`'s run: widen the challenger's share step by step while its live numbers
hold, roll it back by itself when one falls, and at the last step hand over to promote's gate.

A step begins when its share is written to Redis (the pollers serve it within their refresh,
streamfn.infer.canary). Every closed window that began after it is judged (streamfn.challenger
.judge); the first that falls rolls the canary back: share 0, a decision tag on both versions
with the reason, one JSON log line and one more rollback counted in Redis (the pollers publish
it as `streamfn_canary_rollbacks_total`). Once a step has lasted `every_s` with at least one
window judged and held, the next step begins; after the last, promote's gate decides on every
row both versions scored. The state is Redis's and the tags', so a restarted command resumes
from the step it had reached.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from streamfn.challenger import gate as gates
from streamfn.challenger.canary_state import CanaryStore
from streamfn.challenger.judge import Thresholds, Verdict, figures, judge
from streamfn.challenger.windows import kept
from streamfn.core.canaries import PROMOTED, REFUSED, ROLLED_BACK, Canary
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys

log = logging.getLogger(__name__)


class CanaryError(RuntimeError):
    """The canary cannot start or go on as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """What `streamfn canary` was asked: the steps, how long each lasts, the thresholds of a
    window, and promote's gate at the end."""

    model: str
    steps: tuple[float, ...]
    every_s: float
    limits: Thresholds
    window_s: int  # MONITOR_WINDOW_S: a window is final 2 windows after it began
    min_labelled: int = 200
    min_delta: float = 0.0
    gate: str = "labels"


class CanaryRun:
    """One model's canary, driven pass by pass (`tick`) by the command that holds its lock."""

    def __init__(
        self, plan: Plan, redis: SyncClient, keys: Keys, gate: gates.Gate, store: CanaryStore,
        say: Callable[[str], None], clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.redis = redis
        self.keys = keys
        self.gate = gate
        self.store = store
        self.say = say
        self.clock = clock
        self.champion, self.challenger = "", ""
        self.canary: Canary | None = None
        self.judged_to = -1  # the start of the last window judged in this step
        self.held = 0  # windows of this step that held

    # -- starting ---------------------------------------------------------------------------

    def versions(self) -> tuple[str, str]:
        """(champion, challenger), CanaryError when either is missing."""
        try:
            return self.gate.versions()
        except gates.GateError as error:
            raise CanaryError(str(error)) from None

    def attach(self) -> Canary | None:
        """The versions the aliases name now, and the challenger's canary so far (if any)."""
        self.champion, self.challenger = self.versions()
        self.canary = self.store.read(self.challenger)
        return self.canary

    def start(self, again: bool = False, dry_run: bool = False) -> Canary:
        """Resume the challenger's canary at the step it reached, or begin at the first step."""
        found = self.attach()
        if found is not None and not found.running and not again:
            raise CanaryError(
                f"v{self.challenger}'s canary ended {found.status} ({found.reason}); pass "
                "--again to start it over from the first step"
            )
        now = int(self.clock() * 1000)
        if found is not None and found.running:
            index = next((i for i, s in enumerate(self.plan.steps) if s >= found.share - 1e-9),
                         len(self.plan.steps) - 1)  # fmt: skip
            share = self.plan.steps[index]
            since = found.since_ms if math.isclose(share, found.share) else now
            verb = "resumes"
        else:
            index, share, since, verb = 0, self.plan.steps[0], now, "starts"
        self.canary = Canary(self.challenger, share, steps=self.plan.steps, step=index,
                             every_s=self.plan.every_s, since_ms=since, updated_ms=now,
                             reason=f"step {index + 1} of {len(self.plan.steps)}")  # fmt: skip
        if not dry_run:
            self.store.save(self.canary)
        self.say(f"{self.plan.model}: canary of v{self.challenger} {verb} at step {index + 1} of "
                 f"{len(self.plan.steps)}: it serves {share:.0%} of the messages, champion "
                 f"v{self.champion} scores them in shadow")  # fmt: skip
        return self.canary

    # -- each pass --------------------------------------------------------------------------

    def tick(self) -> str | None:
        """Judge the windows closed since the last pass; roll back, widen or hand over. The
        status the canary ended with, or None while it goes on."""
        canary = self._current()
        kept_now = self.store.current()
        if kept_now is None or kept_now.version != canary.version:
            self.store.save(canary, tag=False)  # Redis lost it: the pollers need the share
        elif not kept_now.running:  # `streamfn canary --rollback` ended it meanwhile
            self.canary = kept_now
            self.say(f"{self.plan.model}: the canary ended {kept_now.status}: {kept_now.reason}")
            return kept_now.status
        for verdict in self.verdicts(canary):
            self.judged_to = verdict.figures.start
            self.say(f"window {_clock(verdict.figures.start)} at {canary.share:.0%}: "
                     f"{verdict.reason}")  # fmt: skip
            if verdict.held is False:
                return self.roll_back(verdict.reason, verdict.figures.to_json())
            if verdict.held:
                self.held += 1
                self.canary = canary = replace(canary, reason=verdict.reason)
                self.store.save(canary, tag=False)
        lasted = self.clock() - canary.since_ms / 1000
        if lasted < self.plan.every_s or not self.held:
            return None
        if canary.step + 1 >= len(self.plan.steps):
            return self.hand_over()
        self.widen(canary)
        return None

    def verdicts(self, canary: Canary) -> list[Verdict]:
        """The verdicts of the final windows that began in this step and were not judged yet."""
        window_s = self.plan.window_s
        first = math.ceil(canary.since_ms / 1000 / window_s) * window_s
        final = self.clock() - 2 * window_s  # the closer's rule: no message of it in flight
        found = kept(self.redis, self.keys, self.plan.model, (self.champion, self.challenger),
                     max(first, self.judged_to + 1))  # fmt: skip
        by_start: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
        for window in found:
            if window.start <= final:
                by_start[window.start][window.version] = window.counts
        return [judge(figures(start, by_start[start], self.champion, self.challenger),
                      self.plan.limits) for start in sorted(by_start)]  # fmt: skip

    def _current(self) -> Canary:
        """The canary as this command set it, CanaryError if the aliases moved under it."""
        assert self.canary is not None, "start() first"
        if self.gate.versions() != (self.champion, self.challenger):
            raise CanaryError(
                f"the aliases moved (champion v{self.champion}, challenger v{self.challenger} "
                "when it began): this canary stops; start one for the new challenger"
            )
        return self.canary

    # -- decisions --------------------------------------------------------------------------

    def widen(self, canary: Canary) -> None:
        """The next step: a wider share, from now."""
        index = canary.step + 1
        share = self.plan.steps[index]
        now = int(self.clock() * 1000)
        self.canary = replace(canary, share=share, step=index, since_ms=now, updated_ms=now,
                              reason=f"widened after {self.held} window(s) held")  # fmt: skip
        # The decision first: killed between the two, a restarted command widens again (the
        # decision tagged twice), where the other order would serve the share with no record.
        self._decided(f"canary widened to {share:.0%}", {"share": share, "step": index + 1})
        self.store.save(self.canary)
        self.judged_to, self.held = -1, 0
        self.say(f"{self.plan.model}: widened to {share:.0%} (step {index + 1} of "
                 f"{len(self.plan.steps)})")  # fmt: skip

    def roll_back(self, reason: str, evidence: dict[str, Any] | None = None) -> str:
        """Share 0, the reason tagged on both versions, one log line, one rollback counted."""
        canary = self._current()
        now = int(self.clock() * 1000)
        self.canary = replace(canary, share=0.0, status=ROLLED_BACK, reason=reason,
                              updated_ms=now)  # fmt: skip
        self.store.save(self.canary)
        rollbacks = self.store.count_rollback()
        self._decided("canary rolled back", {"share": canary.share, "step": canary.step + 1,
                                             "reason": reason, "window": evidence})  # fmt: skip
        log.warning("canary rolled back", extra={
            "model": self.plan.model, "champion": self.champion, "challenger": self.challenger,
            "share": canary.share, "step": canary.step + 1, "reason": reason,
            "window": evidence, "rollbacks": rollbacks,
        })  # fmt: skip
        self.say(
            f"{self.plan.model}: rolled back at {canary.share:.0%}: {reason}; "
            f"v{self.challenger} serves nothing now (pollers follow within a second)"
        )
        return ROLLED_BACK

    def hand_over(self) -> str:
        """The last step held: promote's gate decides on every row both versions scored."""
        canary = self._current()
        found = gates.evidence(self.redis, self.keys, self.plan.model, self.champion,
                               self.challenger)  # fmt: skip
        decision = gates.decide(found, self.plan.min_labelled, self.plan.min_delta,
                                self.plan.gate)  # fmt: skip
        self.gate.record(decision, dry_run=False)
        status = PROMOTED if decision.promote else REFUSED
        now = int(self.clock() * 1000)
        self.canary = replace(canary, share=0.0, status=status, reason=decision.reason,
                              updated_ms=now)  # fmt: skip
        self.store.save(self.canary)
        self.say(f"{self.plan.model}: the last step held; promote's gate: {decision.reason}")
        return status

    def _decided(self, decision: str, details: dict[str, Any]) -> None:
        """A decision of the canary, tagged on both versions as promote's are."""
        entry = {"decision": decision, "decided_at": gates.now_iso(), "champion": self.champion,
                 "challenger": self.challenger, **details}  # fmt: skip
        self.gate.decided(self.challenger, decision, entry)
        self.gate.decided(self.champion, f"{decision} (challenger v{self.challenger})", entry)


def _clock(start: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(start))
