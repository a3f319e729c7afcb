"""`streamfn promote` and `streamfn rollback`: move the champion alias on evidence, and back.

The evidence is live: the windows' counts of the shadow rows that got a label through
POST /feedback, where champion and challenger judged the same records. The gate passes when the
challenger's macro F1 on at least `min_labelled` of them is not below the champion's minus
`min_delta`. Where no labels come back, `--gate estimated` reads the same shadow rows' macro F1
estimated from each version's calibrated probabilities (CBPE) instead: weaker evidence, since it
trusts both calibrations and cannot see a change in what the labels would be.

Every decision, refusals and rollbacks included, is kept as tags on both versions:
`streamfn.decision` and `streamfn.decided_at` say the latest, and one
`streamfn.decision.<UTC time>` per decision holds its evidence as JSON, so the registry keeps the
whole story. Promotion removes the challenger alias (the challenger is the champion now) and
tags the new champion `streamfn.previous_champion`, which `rollback` reads.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient

from streamfn.challenger.windows import kept
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys
from streamfn.models.registry import ClientRegistry
from streamfn.monitor import stats

TAG = "streamfn."


class GateError(RuntimeError):
    """The promotion or rollback cannot be decided (no challenger, nothing to roll back to)."""


@dataclass(frozen=True)
class Evidence:
    """Champion and challenger on the same labelled live rows, summed over the kept windows."""

    champion: str
    challenger: str
    compared: int
    agreement: float | None
    labelled: int
    champion_f1: float | None
    challenger_f1: float | None
    estimated_rows: int = 0
    champion_estimated_f1: float | None = None
    challenger_estimated_f1: float | None = None


@dataclass(frozen=True)
class Decision:
    """What the gate decided, and the sentence that says why."""

    promote: bool
    reason: str
    evidence: Evidence


def evidence(redis: SyncClient, keys: Keys, model: str, champion: str, challenger: str) -> Evidence:
    """The challenger beside this champion on every row both scored, summed over every window
    kept: in the champion's windows (the challenger in shadow) and in the challenger's canary
    windows (the champion in shadow)."""
    found = kept(redis, keys, model, (champion, challenger))
    summed = stats.paired(((w.version, w.counts) for w in found), champion, challenger)
    report = stats.challenger_report(summed, challenger, None, drift_psi=1.0)
    return Evidence(
        champion, challenger, report["compared"], report["agreement"], report["labelled"],
        report["champion_macro_f1"], report["macro_f1"], report["estimated_rows"],
        report["champion_estimated_macro_f1"], report["estimated_macro_f1"],
    )  # fmt: skip


GATES = ("labels", "estimated")


def decide(found: Evidence, min_labelled: int, min_delta: float, gate: str = "labels") -> Decision:
    """The gate: enough labelled shadow rows (with `gate="estimated"`, enough shadow rows both
    versions' calibrations estimated), and a macro F1 not below the champion's minus D."""
    a, b = f"v{found.challenger}", f"v{found.champion}"
    needed = max(min_labelled, 1)  # no rows at all is never evidence
    if gate == "estimated":
        rows, ours, theirs = (found.estimated_rows, found.champion_estimated_f1,
                              found.challenger_estimated_f1)  # fmt: skip
        kind, score = "live rows with estimated scores", "estimated macro F1"
        missing = ("both versions need a calibration (streamfn train logs one; streamfn "
                   "profile --label fits one) and shadow traffic")  # fmt: skip
    else:
        rows, ours, theirs = found.labelled, found.champion_f1, found.challenger_f1
        kind, score = "labelled live rows", "macro F1"
        missing = "send more labels to POST /feedback"
    if rows < needed or ours is None or theirs is None:
        why = (f"refused: challenger {a} has {rows:,} {kind} scored beside champion {b}, and "
               f"the gate needs {needed:,} (--min-labelled); {missing}, and try again")  # fmt: skip
        return Decision(False, why, found)
    scored = f"on {rows:,} {kind}"
    if theirs < ours - min_delta:
        why = (f"refused: challenger {a} scores {score} {theirs:.3f} {scored}, below champion "
               f"{b}'s {ours:.3f} minus {min_delta:g} (--min-delta)")  # fmt: skip
        return Decision(False, why, found)
    why = (f"promoted: challenger {a} scores {score} {theirs:.3f} {scored}, champion {b} "
           f"{ours:.3f} (gate: not below {ours - min_delta:.3f})")  # fmt: skip
    return Decision(True, why, found)


class Gate:
    """One registered model's champion and challenger aliases, and the tags of decisions."""

    def __init__(self, client: MlflowClient, name: str, champion: str, challenger: str) -> None:
        self.client = client
        self.name = name
        self.champion_alias = champion
        self.challenger_alias = challenger
        self._aliases = ClientRegistry(client.tracking_uri)

    def versions(self) -> tuple[str, str]:
        """(champion, challenger) versions; GateError naming what is missing."""
        champion = self._aliases.alias_target(self.name, self.champion_alias)
        challenger = self._aliases.alias_target(self.name, self.challenger_alias)
        if champion is None:
            raise GateError(f"{self.name} has no @{self.champion_alias}: run `streamfn train`")
        if challenger is None:
            raise GateError(
                f"{self.name} has no @{self.challenger_alias}: register one with "
                f"`streamfn train --model … --alias {self.challenger_alias}`"
            )
        return champion, challenger

    def record(self, decision: Decision, dry_run: bool) -> None:
        """Apply a decision (unless a dry run): tags on both versions, aliases if promoted."""
        if dry_run:
            return
        found = decision.evidence
        outcome = "promoted" if decision.promote else "refused"
        entry = {"decision": outcome, "decided_at": now_iso(), "champion": found.champion,
                 "challenger": found.challenger, "labelled": found.labelled,
                 "champion_macro_f1": found.champion_f1, "challenger_macro_f1": found.challenger_f1,
                 "agreement": found.agreement, "reason": decision.reason}  # fmt: skip
        self.decided(found.champion, f"challenger {outcome}", entry)
        self.decided(found.challenger, outcome, entry)
        if decision.promote:  # on the new champion only: where `rollback` looks
            self.tag(found.challenger, {"previous_champion": found.champion})
            self.client.set_registered_model_alias(self.name, self.champion_alias, found.challenger)
            self.client.delete_registered_model_alias(self.name, self.challenger_alias)

    def rollback(self, dry_run: bool) -> tuple[str, str]:
        """Point the champion alias back at the version it replaced: (from, to)."""
        current = self._aliases.alias_target(self.name, self.champion_alias)
        if current is None:
            raise GateError(f"{self.name} has no @{self.champion_alias}: nothing to roll back")
        tags = self.client.get_model_version(self.name, current).tags
        previous = tags.get(TAG + "previous_champion")
        if not previous or previous == current:
            raise GateError(
                f"{self.name} v{current} did not become @{self.champion_alias} through "
                "`streamfn promote`: there is no previous champion to go back to"
            )
        if not dry_run:
            entry = {"decision": "rolled back", "decided_at": now_iso(), "champion": previous,
                     "replaced": current}  # fmt: skip
            self.decided(current, "rolled back", entry)
            self.decided(previous, "restored by rollback", entry)
            self.tag(current, {"previous_champion": ""})  # rolled back once, not twice
            self.client.set_registered_model_alias(self.name, self.champion_alias, previous)
        return current, previous

    def decided(self, version: str, decision: str, entry: dict[str, Any]) -> None:
        """The latest decision on a version, and this one's entry in its history."""
        stamp = str(entry["decided_at"]).replace("-", "").replace(":", "").replace(".", "")
        self.tag(version, {"decision": decision, "decided_at": entry["decided_at"],
                            f"decision.{stamp}": json.dumps(entry)})  # fmt: skip

    def tag(self, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            text = "" if value is None else str(value)
            self.client.set_model_version_tag(self.name, version, TAG + key, text)


def now_iso() -> str:
    """Now, UTC, to the microsecond (two decisions of one command never share a history key)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
