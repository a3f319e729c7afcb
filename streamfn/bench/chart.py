"""The benchmark's pictures: the pipeline's records/s beside its peers' at the same records per
request (bench.png), and its latency under load (bench-latency.png).

bench.png can be drawn again from a report alone (BENCHMARKS.md, or a run's bench.md): its
Results table gives the bars, its Ratios table the ratio on each (computed before the table
rounded the records/s, so the picture says what the table says):

    .venv/bin/python -m streamfn.bench.chart BENCHMARKS.md docs/bench.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streamfn.bench import DESIGNS, Measurement

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from streamfn.bench.findings import Findings

Ratios = dict[tuple[str, int, str], float]  # (model, records per request, peer) -> ratio
# What the pipeline is compared with, in the order of the bars after its own: the ways people
# serve a model otherwise, then the in-process floor (the model alone, no HTTP, no stream).
PEERS = ("mlflow serve", "mlserver", "seed", "floor")
NAMES = {
    "pipeline": "streamfn pipeline",
    "mlflow serve": "mlflow models serve",
    "mlserver": "MLServer, adaptive batching",
    "seed": "hand-written consumer (the seed's: one record a message, a model load each)",
    "floor": "in-process floor (frame + predict + CSV, same records per call)",
}
COLOURS = {"pipeline": "#2a9d3f", "mlflow serve": "#5b7db1", "mlserver": "#e08a2e",
           "seed": "#9a9a9a", "floor": "#d9d9d9"}  # fmt: skip
BAR_WIDTH = 0.17


@dataclass(frozen=True)
class Bar:
    """One bar: a design's records/s, and the pipeline's divided by it (None: the pipeline's)."""

    design: str
    records_per_s: float
    ratio: float | None


def groups(findings: Findings, published: Ratios | None = None) -> dict[str, dict[int, list[Bar]]]:
    """Per model, per records per request the pipeline was measured at: its bar, then each
    peer's measured at the same size, with the ratio (the seed's design reads one record a
    message, so it stands beside the pipeline at one record per request only). `published`:
    the ratios a report printed, used where it has them."""
    found: dict[str, dict[int, list[Bar]]] = {}
    ours = [m for m in findings.measurements if m.design == "pipeline" and m.records_per_s]
    for m in sorted(ours, key=lambda m: (m.model, m.records_per_request)):
        bars = [Bar("pipeline", m.records_per_s, None)]
        for design in PEERS:
            peer = findings.find(design, m.model, m.records_per_request)
            if peer is None or not peer.records_per_s:
                continue
            ratio = (published or {}).get((m.model, m.records_per_request, design))
            bars.append(
                Bar(design, peer.records_per_s, ratio or m.records_per_s / peer.records_per_s)
            )
        found.setdefault(m.model, {})[m.records_per_request] = bars
    return found


def times(ratio: float) -> str:
    """A ratio as written on a bar: 2,586x, 35.6x, 0.9x (as the report's Ratios table)."""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def draw(findings: Findings, published: Ratios | None = None) -> Figure:
    """Records/s per model: bars grouped by records per request, the pipeline first, each
    peer's bar with how many times the pipeline's records/s it is below (log scale)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    found = groups(findings, published)
    figure = Figure(figsize=(5.2 * max(len(found), 1), 5.2))
    axes = figure.subplots(1, max(len(found), 1), squeeze=False)[0]
    for axis, (model, sizes) in zip(axes, found.items(), strict=False):
        for slot, bars in enumerate(sizes.values()):
            start = slot - BAR_WIDTH * (len(bars) - 1) / 2
            for n, bar in enumerate(bars):
                x = start + n * BAR_WIDTH
                axis.bar(x, bar.records_per_s, BAR_WIDTH * 0.92, color=COLOURS[bar.design],
                         edgecolor="#444444", linewidth=0.5)  # fmt: skip
                label = f"{bar.records_per_s:,.0f}/s" if bar.ratio is None else times(bar.ratio)
                axis.text(x, bar.records_per_s * 1.12, label, ha="center", va="bottom",
                          rotation=90, fontsize=8,
                          fontweight="normal" if bar.ratio is None else "bold")  # fmt: skip
        ticks = [f"{s:,} record{'s' if s > 1 else ''}\nper request" for s in sizes]
        axis.set_xticks(range(len(sizes)), ticks)
        axis.set_yscale("log")
        low, high = axis.get_ylim()
        axis.set_ylim(low, high * 12)  # room for the labels above the tallest bar
        axis.set_title(model)
        axis.set_ylabel("records/s (log scale)")
        axis.grid(True, axis="y", which="major", alpha=0.3)
        axis.set_axisbelow(True)
    drawn = {b.design for sizes in found.values() for bars in sizes.values() for b in bars}
    shown = [d for d in ("pipeline", *PEERS) if d in drawn]
    figure.legend([Patch(facecolor=COLOURS[d], edgecolor="#444444") for d in shown],
                  [NAMES[d] for d in shown], loc="lower center", ncol=2, fontsize=8,
                  frameon=False)  # fmt: skip
    figure.suptitle(
        "streamfn bench: records per second, the pipeline beside its peers at the same load\n"
        "on each peer's bar: the pipeline's records/s divided by that peer's"
    )
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    return figure


def chart(findings: Findings, path: Path, published: Ratios | None = None) -> None:
    """Draw the records/s picture into a PNG."""
    draw(findings, published).savefig(path, dpi=110)


def latency_chart(findings: Findings, path: Path) -> None:
    """p50 and p99 against the accepted rate, one panel per request size, log scales."""
    from matplotlib.figure import Figure

    sizes = sorted({p.records_per_request for p in findings.curve})
    figure = Figure(figsize=(5.5 * max(len(sizes), 1), 4.2))
    axes = figure.subplots(1, max(len(sizes), 1), squeeze=False)[0]
    for axis, size in zip(axes, sizes, strict=False):
        points = sorted((p for p in findings.curve if p.records_per_request == size),
                        key=lambda p: p.achieved_per_s)  # fmt: skip
        rates = [p.achieved_per_s for p in points]
        axis.plot(rates, [p.p50_ms for p in points], "o-", label="p50", color="tab:green")
        axis.plot(rates, [p.p99_ms for p in points], "s--", label="p99", color="tab:red")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("accepted requests/s (log)")
        axis.set_ylabel("accepted → row in S3, ms (log)")
        model = points[0].model if points else ""
        axis.set_title(f"{model}, {size} record{'s' if size > 1 else ''} per request")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle("streamfn bench: latency under load")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _number(cell: str) -> float:
    return 0.0 if cell in ("—", "") else float(cell.replace(",", ""))  # "—": not measured


def measurements(report: str) -> list[Measurement]:
    """The rows of a report's Results table (report.results_table's layout)."""
    design_of = {label: design for design, label in DESIGNS.items()}
    found = []
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or cells[0] not in design_of:
            continue
        design, model, size, per_s, p50, p99, latency_of, note = cells
        numbers = (_number(per_s), _number(p50), _number(p99))
        found.append(Measurement(design_of[design], model, int(size.replace(",", "")), *numbers,
                                 latency_of, note))  # fmt: skip
    return found


def ratios(report: str) -> Ratios:
    """The ratios of a report's Ratios table (report.ratios_table's layout)."""
    from streamfn.bench.report import PEERS as COLUMNS

    header = "| model | records/request | " + " | ".join(
        f"pipeline ÷ {label}" for _, label in COLUMNS
    )
    lines = report.splitlines()
    if not any(line.startswith(header) for line in lines):
        return {}
    rows = lines[[line.startswith(header) for line in lines].index(True) + 2 :]
    found: Ratios = {}
    for line in rows:
        if not line.startswith("|"):
            break
        model, size, *cells = (c.strip() for c in line.strip().strip("|").split("|"))
        for (design, _), cell in zip(COLUMNS, cells, strict=True):
            if cell != "—":
                found[(model, int(size.replace(",", "")), design)] = _number(
                    cell.removesuffix(" x")
                )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Draw bench.png again from a report's Results table."""
    from streamfn.bench.findings import Findings

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("report", type=Path, help="BENCHMARKS.md, or a run's bench.md")
    parser.add_argument("out", type=Path, help="the PNG to write, e.g. docs/bench.png")
    args = parser.parse_args(argv)
    text = args.report.read_text()
    found = measurements(text)
    if not any(m.design == "pipeline" for m in found):
        parser.error(f"{args.report} has no Results table with the pipeline's rows")
    chart(Findings(str(args.report), {}, found), args.out, ratios(text))
    print(f"wrote {args.out} from {len(found)} measurements of {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
