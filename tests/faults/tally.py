"""What became of a fault case's accepted records, counted row by row, and its summary line."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamfn.models.seed import EMPLOYEE_ID

REPORT_VARIABLE = "STREAMFN_FAULT_REPORT"
SUMMARIES: list[str] = []  # one line per case, shown at the end of the run


@dataclass(frozen=True)
class Tally:
    """What became of the accepted records, counted row by row in the bucket."""

    fault: str
    accepted: int  # records the ingest answered 202 for
    written: int  # distinct records (Employee IDs) in the bucket
    duplicated: int  # records with more than one row, by Employee ID
    duplicated_keys: int  # (message_id, record_index) with more than one row
    lost: int  # accepted, not in the bucket and not dead-lettered
    dead_lettered: int  # entries in the dead-letter stream
    unexpected: int  # rows of records never accepted
    seconds: float
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few ids of each anomaly

    COUNTS = ("accepted", "written", "duplicated", "duplicated_keys", "lost", "dead_lettered",
              "unexpected", "seconds")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The counts, for the JSON report."""
        return {"fault": self.fault, **{name: getattr(self, name) for name in self.COUNTS}}

    def line(self) -> str:
        """The one summary line of a case."""
        return f"fault={self.fault} " + " ".join(
            f"{name}={getattr(self, name)}" for name in self.COUNTS
        )


def dead_letter_ids(entry: Mapping[str, str]) -> list[str]:
    """Employee IDs of the records in a dead-letter entry (none if its data is not records)."""
    try:
        data = orjson.loads(entry.get("data", ""))
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, list):
        return []
    return [str(r[EMPLOYEE_ID]) for r in data if isinstance(r, dict) and EMPLOYEE_ID in r]


def count_rows(
    fault: str,
    accepted: Mapping[str, str],
    rows: Sequence[Mapping[str, str]],
    dead_letters: Sequence[Mapping[str, str]],
    seconds: float,
) -> Tally:
    """Compare the accepted records with the bucket's rows and the dead-letter stream."""
    by_id = Counter(row[EMPLOYEE_ID] for row in rows)
    by_key = Counter((row["message_id"], row["record_index"]) for row in rows)
    dead = {i for entry in dead_letters for i in dead_letter_ids(entry)}
    lost = sorted(set(accepted) - set(by_id) - dead)
    duplicated = sorted(i for i, n in by_id.items() if n > 1)
    duplicated_keys = sorted(f"{m}/{i}" for (m, i), n in by_key.items() if n > 1)
    unexpected = sorted(set(by_id) - set(accepted))
    return Tally(
        fault=fault,
        accepted=len(accepted),
        written=len(by_id),
        duplicated=len(duplicated),
        duplicated_keys=len(duplicated_keys),
        lost=len(lost),
        dead_lettered=len(dead_letters),
        unexpected=len(unexpected),
        seconds=round(seconds, 1),
        examples={
            "lost": lost[:5],
            "duplicated": duplicated[:5],
            "duplicated_keys": duplicated_keys[:5],
            "unexpected": unexpected[:5],
        },
    )


def epoch_s(iso: str) -> float:
    """A time of the CSV (ISO-8601 UTC, 2026-11-26T07:19:29.123Z) in epoch seconds."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def report(tally: Tally) -> None:
    """Print the case's summary line and append it as JSON to $STREAMFN_FAULT_REPORT, if set."""
    line = tally.line()
    print(line)
    SUMMARIES.append(line)
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(tally.as_dict()) + "\n")
