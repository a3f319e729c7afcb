"""A canary's verdict on one closed window: do the challenger's live numbers hold?

The figures are those of every row both versions scored in the window, in both directions
(the champion's window with the challenger in shadow, the challenger's canary window with the
champion in shadow: streamfn.monitor.stats.paired), and the canary's own error rate. Four
thresholds, each judged once its rows are enough (`min_rows`); the first one crossed rolls the
canary back:
- the challenger's macro F1 on the labelled rows below the champion's on the same rows by more
  than `max_f1_drop`;
- its macro F1 estimated from its calibration (CBPE) below the champion's, estimated on the
  same rows, by more than `max_estimated_drop`;
- the PSI of its predicted classes against the champion's on the same rows above `max_psi`;
- the share of its canary rows it could not serve above `max_error_rate` (judged on any number
  of rows: a model that fails does so from the first row).
A window with too few rows for any of the first three is not judged (it neither holds nor
falls), unless its error rate falls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamfn.monitor import stats


@dataclass(frozen=True)
class Thresholds:
    """How far the challenger may fall behind the champion in one window, and on how many rows."""

    max_f1_drop: float = 0.02
    max_estimated_drop: float = 0.02
    max_psi: float = 0.2
    max_error_rate: float = 0.01
    min_rows: int = 200


@dataclass(frozen=True)
class Figures:
    """One window's numbers of the challenger beside the champion."""

    start: int
    compared: int
    labelled: int
    macro_f1: float | None
    champion_macro_f1: float | None
    estimated_rows: int
    estimated_macro_f1: float | None
    champion_estimated_macro_f1: float | None
    psi: float | None  # of its predicted classes against the champion's, same rows
    served: int  # rows it served as the canary
    failed: int  # rows of its share it could not serve

    @property
    def error_rate(self) -> float | None:
        """Failed canary rows over the canary's rows, None without any."""
        total = self.served + self.failed
        return self.failed / total if total else None

    def to_json(self) -> dict[str, Any]:
        """Its fields, and the error rate, for a log line or a tag."""
        return {**self.__dict__, "error_rate": self.error_rate}


@dataclass(frozen=True)
class Verdict:
    """What one window says: held (True), fell (False) or not judged (None), and why."""

    held: bool | None
    reason: str
    figures: Figures


def figures(
    start: int, windows: Mapping[str, Mapping[str, int]], champion: str, challenger: str
) -> Figures:
    """The figures of the window starting at `start` from each version's counts there."""
    summed = stats.paired(windows.items(), champion, challenger)
    report = stats.challenger_report(summed, challenger, None, drift_psi=1.0)
    canary = stats.canary_report(windows.get(challenger, {})) or {"served": 0, "failed": 0}
    return Figures(
        start, report["compared"], report["labelled"], report["macro_f1"],
        report["champion_macro_f1"], report["estimated_rows"], report["estimated_macro_f1"],
        report["champion_estimated_macro_f1"], report["champion_psi"], canary["served"],
        canary["failed"],
    )  # fmt: skip


def judge(found: Figures, limits: Thresholds) -> Verdict:
    """The window's verdict: the first threshold crossed, else whether any was judged."""
    judged, falls = [], []
    rate = found.error_rate
    if rate is not None:
        judged.append(f"errors {rate:.1%} of {found.served + found.failed:,} canary rows")
        if rate > limits.max_error_rate:
            falls.append(f"its error rate {rate:.1%} is above {limits.max_error_rate:.1%}")
    pairs = (
        ("macro F1", found.labelled, found.macro_f1, found.champion_macro_f1,
         limits.max_f1_drop, "labelled"),
        ("estimated macro F1", found.estimated_rows, found.estimated_macro_f1,
         found.champion_estimated_macro_f1, limits.max_estimated_drop, "estimated"),
    )  # fmt: skip
    enough = False
    for name, rows, theirs, ours, drop, kind in pairs:
        if rows < limits.min_rows or theirs is None or ours is None:
            continue
        enough = True
        judged.append(f"{name} {theirs:.3f} vs {ours:.3f} on {rows:,} {kind} rows")
        if theirs < ours - drop:
            falls.append(f"its {name} {theirs:.3f} is below the champion's {ours:.3f} "
                         f"minus {drop:g} on {rows:,} {kind} rows")  # fmt: skip
    if found.compared >= limits.min_rows and found.psi is not None:
        enough = True
        judged.append(f"prediction PSI {found.psi:.3f} against the champion's")
        if found.psi > limits.max_psi:
            falls.append(f"its prediction PSI against the champion's {found.psi:.3f} is above "
                         f"{limits.max_psi:g}")  # fmt: skip
    if falls:
        return Verdict(False, "; ".join(falls), found)
    if not enough:
        why = (f"not judged: {found.compared:,} rows both scored, fewer than the "
               f"{limits.min_rows:,} a window needs (--min-rows)")  # fmt: skip
        return Verdict(None, why, found)
    return Verdict(True, "holds: " + ", ".join(judged), found)
