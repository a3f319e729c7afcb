"""bench.png: bars grouped by records per request, the peers beside the pipeline, the ratio on
each peer's bar; and drawn again from a report's tables alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from streamfn.bench import Measurement, chart, report
from streamfn.bench.chart import COLOURS, Bar

ROOT = Path(__file__).resolve().parents[2]


def measured(design: str, model: str, size: int, per_s: float) -> Measurement:
    return Measurement(design, model, size, per_s, 12.5, 40.0, "request → answer")


def fabricated() -> report.Findings:
    rows = [
        measured("pipeline", "lightgbm", 1, 2_000), measured("pipeline", "lightgbm", 100, 40_000),
        measured("mlflow serve", "lightgbm", 1, 80),
        measured("mlflow serve", "lightgbm", 100, 5_000),
        measured("mlserver", "lightgbm", 1, 1_000), measured("mlserver", "lightgbm", 100, 25_000),
        measured("seed", "lightgbm", 1, 20),
        measured("floor", "lightgbm", 1, 125), measured("floor", "lightgbm", 100, 8_000),
        measured("floor", "lightgbm", 1000, 40_000),  # no pipeline at 1,000: no group
        measured("pipeline", "svm", 100, 9_000), measured("mlserver", "svm", 100, 10_000),
        measured("ingest", "any", 1, 5_000),  # ingest alone: not a model's panel
    ]  # fmt: skip
    return report.Findings("streamfn bench", {}, rows)


def test_bars_are_grouped_by_records_per_request_with_each_peers_ratio() -> None:
    found = chart.groups(fabricated())
    assert list(found) == ["lightgbm", "svm"]
    assert found["lightgbm"] == {
        1: [Bar("pipeline", 2_000, None), Bar("mlflow serve", 80, 25.0),
            Bar("mlserver", 1_000, 2.0), Bar("seed", 20, 100.0), Bar("floor", 125, 16.0)],
        100: [Bar("pipeline", 40_000, None), Bar("mlflow serve", 5_000, 8.0),
              Bar("mlserver", 25_000, 1.6), Bar("floor", 8_000, 5.0)],
    }  # fmt: skip
    assert found["svm"] == {100: [Bar("pipeline", 9_000, None), Bar("mlserver", 10_000, 0.9)]}
    published = chart.groups(fabricated(), {("lightgbm", 1, "seed"): 101.3})
    assert published["lightgbm"][1][3] == Bar("seed", 20, 101.3)


def test_each_peers_ratio_is_written_on_its_own_bar() -> None:
    figure = chart.draw(fabricated())
    lightgbm, svm = figure.axes
    assert lightgbm.get_title() == "lightgbm"
    ticks = [t.get_text() for t in lightgbm.get_xticklabels()]
    assert ticks == ["1 record\nper request", "100 records\nper request"]
    bars = {round(p.get_x() + p.get_width() / 2, 6): p for p in lightgbm.patches}
    written = []
    for text in lightgbm.texts:
        bar = bars[round(text.get_position()[0], 6)]  # the bar under the text
        written.append((text.get_text(), bar.get_height(), to_hex(bar.get_facecolor())))
    assert written == [
        ("2,000/s", 2_000, COLOURS["pipeline"]), ("25.0x", 80, COLOURS["mlflow serve"]),
        ("2.0x", 1_000, COLOURS["mlserver"]), ("100x", 20, COLOURS["seed"]),
        ("16.0x", 125, COLOURS["floor"]),
        ("40,000/s", 40_000, COLOURS["pipeline"]), ("8.0x", 5_000, COLOURS["mlflow serve"]),
        ("1.6x", 25_000, COLOURS["mlserver"]), ("5.0x", 8_000, COLOURS["floor"]),
    ]  # fmt: skip
    # The groups stand apart: every bar of 1 record left of every bar of 100.
    xs = sorted(bars)
    assert max(xs[:5]) < 0.5 < min(xs[5:])
    assert [t.get_text() for t in svm.texts] == ["9,000/s", "0.9x"]
    assert lightgbm.get_yscale() == "log"


def test_a_report_gives_back_its_measurements_and_ratios() -> None:
    findings = fabricated()
    text = "\n".join([*report.results_table(findings.measurements), "",
                      *report.ratios_table(findings)])  # fmt: skip
    assert chart.measurements(text) == findings.measurements
    ratios = chart.ratios(text)
    assert ratios[("lightgbm", 1, "mlflow serve")] == 25.0
    assert ratios[("lightgbm", 100, "mlserver")] == 1.6
    assert ("lightgbm", 100, "seed") in ratios  # the table compares every size with seed's one
    assert ("svm", 100, "mlflow serve") not in ratios  # "—": not measured
    assert chart.groups(findings, ratios) == chart.groups(findings)


def test_the_published_report_has_what_the_picture_needs() -> None:
    text = (ROOT / "BENCHMARKS.md").read_text()
    found = chart.groups(report.Findings("BENCHMARKS.md", {}, chart.measurements(text)),
                         chart.ratios(text))  # fmt: skip
    assert found, "BENCHMARKS.md has no Results table with the pipeline's rows"
    for sizes in found.values():
        for size, bars in sizes.items():
            designs = [b.design for b in bars]
            assert designs[:3] == ["pipeline", "mlflow serve", "mlserver"], (size, designs)


def test_the_command_draws_a_report_and_refuses_one_without_results(tmp_path: Path) -> None:
    findings = fabricated()
    source = tmp_path / "bench.md"
    source.write_text("\n".join(report.results_table(findings.measurements)) + "\n")
    assert chart.main([str(source), str(tmp_path / "bench.png")]) == 0
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.md"
    empty.write_text("# nothing measured\n")
    with pytest.raises(SystemExit) as refused:
        chart.main([str(empty), str(tmp_path / "never.png")])
    assert refused.value.code == 2
    assert not (tmp_path / "never.png").exists()
