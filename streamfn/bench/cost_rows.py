"""The targets rows of what each feature costs the pipeline (streamfn.bench.costs): LightGBM at
100 records/request with the feature and without, each variant's best of two runs alternated."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamfn.bench.findings import Findings

Row = tuple[str, str, bool | None]
TARGET_MODEL = "lightgbm"
ESTIMATION_GOAL = 0.05  # estimated performance costs at most 5% of the records/s
# A canary scores each record twice, as shadow scoring does, and writes an object and done
# records for its share apart: at most this many points of the records/s above shadow scoring's.
CANARY_POINTS = 0.05


def rows(findings: Findings) -> list[Row]:
    """Every cost's row, in the report's order."""
    return [
        monitoring_row(findings.monitoring), sink_row(findings.sink),
        estimation_row(findings.estimation), *explanation_rows(findings.explanations),
        shadow_row(findings.challenger), broken_row(findings.challenger),
        backtest_row(findings.challenger), canary_row(findings.canary, findings.challenger),
    ]  # fmt: skip


def share_row(name: str, found: dict[str, float], on: str, off: str, goal: float | None) -> Row:
    """A feature's cost as a share of the records/s without it (no goal: reported only)."""
    with_, without = found.get(on), found.get(off)
    if not with_ or not without:
        return name, "—", None
    cost = 1 - with_ / without
    value = f"{cost:.1%} ({with_:,.0f} with, {without:,.0f} without)"
    return name, value, None if goal is None else cost <= goal


def monitoring_row(found: dict[str, float]) -> Row:
    """Monitoring on against off."""
    name = f"monitoring costs ≤ 10% of the records/s, {TARGET_MODEL}, 100 records/request"
    return share_row(name, found, "on", "off", 0.10)


def estimation_row(found: dict[str, float]) -> Row:
    """Estimated performance (calibrated probabilities, expected cells) on against off."""
    name = (f"estimated performance costs ≤ {ESTIMATION_GOAL:.0%} of the records/s, "
            f"{TARGET_MODEL}, 100 records/request")  # fmt: skip
    return share_row(name, found, "on", "off", ESTIMATION_GOAL)


def explanation_rows(found: dict[str, float]) -> list[Row]:
    """Reason codes (3 a row) for every message and for a tenth, against none: reported, no
    target (the share is the operator's choice)."""
    return [
        share_row(f"reason codes at EXPLAIN_SHARE={share} cost (reported), {TARGET_MODEL}, 100 "
                  "records/request", found, f"share {share}", "none", None)
        for share in ("1", "0.1")
    ]  # fmt: skip


def sink_row(found: dict[str, float]) -> Row:
    """SINK_FORMAT=parquet against csv: its cost in records/s, and each format's bytes a row."""
    name = f"Parquet costs ≤ 10% of the records/s of CSV, {TARGET_MODEL}, 100 records/request"
    parquet, csv = found.get("parquet"), found.get("csv")
    if not parquet or not csv:
        return name, "—", None
    cost = 1 - parquet / csv
    sizes = (f"; {found['parquet_bytes_per_row']:.1f} against {found['csv_bytes_per_row']:.1f} "
             "bytes a row")  # fmt: skip
    return name, f"{cost:.1%} ({parquet:,.0f} against {csv:,.0f}{sizes})", cost <= 0.10


def shadow_row(found: dict[str, float]) -> Row:
    """Shadow scoring's cost per record against the challenger's own in-process cost."""
    name = (f"shadow scoring costs ≤ the challenger's own frame + predict + CSV (1,000 records "
            f"a call), {TARGET_MODEL}, 100 records/request")  # fmt: skip
    on, off, floor = found.get("on"), found.get("off"), found.get("floor")
    if not (on and off and floor):
        return name, "—", None
    added_us, own_us = (1 / on - 1 / off) * 1e6, 1e6 / floor
    value = (f"{added_us:.1f} µs/record added, own {own_us:.1f} µs/record ({on:,.0f} records/s "
             f"with, {off:,.0f} without)")  # fmt: skip
    return name, value, added_us <= own_us


def broken_row(found: dict[str, float]) -> Row:
    """A broken challenger against none: throughput, and the p99 at one rate."""
    name = (f"a broken challenger (artifacts gone) keeps ≥ 90% of the records/s and a p99 "
            f"≤ 1.5 times none's, {TARGET_MODEL}, 100 records/request")  # fmt: skip
    broken, off = found.get("broken", 0.0), found.get("off", 0.0)
    p99_broken, p99_off = found.get("p99_broken", 0.0), found.get("p99_off", 0.0)
    if not (broken and off and p99_broken and p99_off):
        return name, "—", None
    value = (f"{broken:,.0f} against {off:,.0f} records/s; p99 {p99_broken:.0f} against "
             f"{p99_off:.0f} ms")  # fmt: skip
    return name, value, broken >= 0.9 * off and p99_broken <= 1.5 * p99_off


def backtest_row(found: dict[str, float]) -> Row:
    """`streamfn backtest` against the pipeline run that wrote the rows it reads."""
    name = f"backtest faster than the pipeline that wrote the rows, {TARGET_MODEL} challenger"
    per_s, written = found.get("backtest"), found.get("written")
    if not (per_s and written):
        return name, "—", None
    value = (f"{per_s:,.0f} rows/s over {found['backtest_rows']:,.0f} rows in "
             f"{found['backtest_objects']:,.0f} objects (written at {written:,.0f})")  # fmt: skip
    return name, value, per_s > written


def canary_row(found: dict[str, float], shadow: dict[str, float]) -> Row:
    """A 25% canary against no challenger, beside shadow scoring alone against none: the canary
    scores every record twice as shadow scoring does, and adds an object and a done record per
    batch for its share."""
    name = (f"a 25% canary costs ≤ shadow scoring's cost + {CANARY_POINTS:.0%} of the records/s, "
            f"{TARGET_MODEL}, 100 records/request")  # fmt: skip
    with_, none = found.get("canary"), found.get("none")
    if not (with_ and none):
        return name, "—", None
    cost = 1 - with_ / none
    value = (f"{cost:.1%} ({with_:,.0f} with, {none:,.0f} without; the challenger served "
             f"{found.get('served_share', float('nan')):.1%} of the rows)")  # fmt: skip
    on, off = shadow.get("on"), shadow.get("off")
    if not (on and off):
        return name, value + "; shadow scoring not measured", None
    alone = 1 - on / off
    return name, f"{value}; shadow scoring alone {alone:.1%}", cost <= alone + CANARY_POINTS
