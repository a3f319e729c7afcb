"""What a ceiling measurement found, the records it measures with, and how it is told (a table,
Markdown, JSON)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from streamfn.data.synth import RecordSampler, load_profile

SIZES = (1, 100)  # records per entry (or per request)
MODEL = "lightgbm"
COLUMNS = ("part", "shape", "rate", "records/s", "MB/s", "measured", "notes")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Ceiling:
    """One measured rate."""

    part: str  # one of PARTS
    shape: str  # what was measured, e.g. "1 record/entry", "8 threads"
    unit: str  # what per_s counts: entries, requests, records, PUTs
    per_s: float
    records_per_unit: int  # records per entry/request (0: not records)
    count: int  # units done
    seconds: float
    bytes_per_unit: int = 0  # payload bytes per unit (the entry's data, the object's body)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        """Records per second (0 when the unit holds no records)."""
        return self.per_s * self.records_per_unit

    @property
    def mb_per_s(self) -> float:
        """Payload megabytes (10^6 bytes) per second."""
        return self.per_s * self.bytes_per_unit / 1e6

    def as_dict(self) -> dict[str, Any]:
        """The fields and the derived rates, for --json."""
        return {**asdict(self), "records_per_s": self.records_per_s, "mb_per_s": self.mb_per_s}


def sample_records(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Synthetic employee records, as the producer sends them."""
    return RecordSampler(load_profile(), seed=seed).records(count)


def entry_fields(records: list[dict[str, Any]], model: str = MODEL) -> dict[str, bytes | str]:
    """A stream entry as the ingest writes it (its `data` is the records' JSON)."""
    return {"model": model, "data": orjson.dumps(records),
            "received_at": str(time.time_ns() // 1_000_000)}  # fmt: skip


def shape(records: int, per: str) -> str:
    """What a measurement's unit holds, e.g. "100 records/entry"."""
    return f"{records} record{'s' if records > 1 else ''}/{per}"


def table_rows(found: Sequence[Ceiling]) -> list[tuple[str, ...]]:
    """The table's rows: part, shape, rate, records/s, MB/s, note."""
    rows = []
    for c in found:
        note = ", ".join(f"{k} {v:,.0f}" if v >= 10 else f"{k} {v:,.2g}"
                         for k, v in c.extra.items())  # fmt: skip
        rows.append((c.part, c.shape, f"{c.per_s:,.0f} {c.unit}/s",
                     f"{c.records_per_s:,.0f}" if c.records_per_unit else "",
                     f"{c.mb_per_s:,.1f}", f"{c.count:,} in {c.seconds:.2f} s", note))  # fmt: skip
    return rows


def markdown(found: Sequence[Ceiling]) -> str:
    """The table as Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(found)]
    return "\n".join(lines)


def as_json(found: Sequence[Ceiling]) -> bytes:
    """Every ceiling as JSON."""
    return orjson.dumps([c.as_dict() for c in found], option=orjson.OPT_INDENT_2)
