"""The benchmark's own logic: wrk's report read right, targets judged right, the report written."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfn.bench import CurvePoint, Measurement, chart, cost_rows, load, report
from streamfn.bench.compiled import Compiled

WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:8765/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.31ms    4.17ms  20.34ms   84.89%
    Req/Sec     0.95k   228.91     1.19k    80.00%
  Latency Distribution
     50%  848.00us
     75%    4.80ms
     90%    9.47ms
     99%   17.91ms
  949 requests in 1.00s, 514.54KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 40
Requests/sec:    948.41
Transfer/sec:    514.22KB
"""


def test_wrk_report_is_read_with_refusals_and_units() -> None:
    found = load.parse(WRK_OUTPUT)
    assert (found.requests, found.refused, found.accepted) == (949, 43, 906)
    assert found.seconds == pytest.approx(1.0)
    assert found.p50_ms == pytest.approx(0.848)
    assert found.p99_ms == pytest.approx(17.91)
    assert found.rate == pytest.approx(906.0)


def test_a_wrk_report_without_totals_is_an_error() -> None:
    with pytest.raises(load.LoadError, match="no totals"):
        load.parse("unable to connect to 127.0.0.1:1 Connection refused")


def findings(pipeline_100: float, pipeline_1: float, p99: float) -> report.Findings:
    m = [
        Measurement("pipeline", "lightgbm", 100, pipeline_100, 40, p99, "accepted → row in S3"),
        Measurement("pipeline", "lightgbm", 1, pipeline_1, 20, p99, "accepted → row in S3"),
        Measurement("mlflow serve", "lightgbm", 100, 5000, 30, 60, "request → answer"),
        Measurement("floor", "lightgbm", 100, 50000, 2, 3, "one call"),
        Measurement("ingest", "any", 1, 2500, 1, 5, "request → answer"),
        Measurement("bare ingest", "any", 1, 3000, 1, 4, "request → answer"),
        Measurement("ingest", "any", 100, 90000, 5, 20, "request → answer"),
        Measurement("bare ingest", "any", 100, 200000, 2, 9, "request → answer"),
    ]
    loads = {"p1": {("lightgbm", "1"): 1}, "p2": {("lightgbm", "1"): 1}}
    return report.Findings("streamfn bench", {"pollers": "1"}, m, [480.0, 510.0], loads)


def test_targets_are_judged_on_the_measurements() -> None:
    met = "\n".join(report.targets_table(findings(25_000, 2_500, 120)))
    assert "**missed**" in met  # ingest at 100/request is 45% of bare
    assert met.count("| met |") == 7
    missed = "\n".join(report.targets_table(findings(15_000, 1_000, 450)))
    assert missed.count("**missed**") == 5


def test_ratios_and_the_whole_report() -> None:
    data = findings(25_000, 2_500, 120)
    ratios = "\n".join(report.ratios_table(data))
    assert "| lightgbm | 100 | 5.0 x | — | 0.5 x | — |" in ratios
    text = report.markdown(data, "bench.png")
    assert text.startswith("# streamfn bench")
    assert "cores" in text
    assert "![records per second](bench.png)" in text


def test_the_light_traffic_targets_come_from_the_curve(tmp_path: Path) -> None:
    data = findings(25_000, 2_500, 120)
    unmeasured = "\n".join(report.targets_table(data))
    assert "20 requests/s of 1 record: ≤ 20 ms | — | not measured |" in unmeasured
    data.curve = [
        CurvePoint("lightgbm", 1, 10, 9.8, 15.0, 30.0, 300),
        CurvePoint("lightgbm", 1, 20, 19.5, 19.0, 61.0, 300),
        CurvePoint("lightgbm", 100, 20, 19.6, 40.0, 90.0, 300),
    ]
    judged = "\n".join(report.targets_table(data))
    assert "p50 accepted → S3 at 20 requests/s of 1 record: ≤ 20 ms | 19.0 ms | met |" in judged
    assert (
        "p99 accepted → S3 at 20 requests/s of 1 record: ≤ 50 ms | 61.0 ms | **missed** |" in judged
    )
    assert "| lightgbm | 100 | 20 | 20 | 1,960 | 40.0 | 90.0 | 300 |" in report.curve_table(data)
    chart.latency_chart(data, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.markdown(data, "bench.png", "latency.png")
    assert "## Latency under load" in text
    assert "![latency under load](latency.png)" in text


def test_the_challengers_rows_are_judged_on_their_own_numbers() -> None:
    found = {"on": 25_000.0, "off": 50_000.0, "floor": 40_000.0, "broken": 48_000.0,
             "p99_off": 100.0, "p99_broken": 140.0, "backtest": 90_000.0, "written": 50_000.0,
             "backtest_rows": 500_000.0, "backtest_objects": 30.0}  # fmt: skip
    # 20 µs a record added against 25 µs of its own: met; then a costlier shadow: missed.
    assert cost_rows.shadow_row(found)[1:] == (
        "20.0 µs/record added, own 25.0 µs/record (25,000 records/s with, 50,000 without)",
        True,
    )
    assert cost_rows.shadow_row({**found, "on": 20_000.0})[2] is False
    assert cost_rows.broken_row(found)[2] is True
    assert cost_rows.broken_row({**found, "broken": 44_000.0})[2] is False  # below 90%
    assert cost_rows.broken_row({**found, "p99_broken": 160.0})[2] is False  # above 1.5 times
    assert cost_rows.backtest_row(found)[2] is True
    assert cost_rows.backtest_row({**found, "backtest": 40_000.0})[2] is False
    assert cost_rows.backtest_row({})[1:] == ("—", None)


def test_estimation_is_judged_on_its_five_percent_and_explanations_are_reported() -> None:
    assert cost_rows.estimation_row({"on": 9_600.0, "off": 10_000.0}) == (
        "estimated performance costs ≤ 5% of the records/s, lightgbm, 100 records/request",
        "4.0% (9,600 with, 10,000 without)",
        True,
    )
    assert cost_rows.estimation_row({"on": 9_400.0, "off": 10_000.0})[2] is False
    assert cost_rows.estimation_row({})[1:] == ("—", None)
    every, tenth = cost_rows.explanation_rows(
        {"none": 10_000.0, "share 1": 6_000.0, "share 0.1": 9_500.0}
    )
    assert every[1:] == ("40.0% (6,000 with, 10,000 without)", None)  # no target: reported
    assert tenth[1] == "5.0% (9,500 with, 10,000 without)"
    data = findings(25_000, 2_500, 120)
    data.estimation = {"on": 9_600.0, "off": 10_000.0}
    text = report.costs_markdown(data)
    assert "| estimated performance costs ≤ 5% of the records/s" in text
    assert "| reason codes at EXPLAIN_SHARE=1 cost (reported)" in text
    assert "## " not in text  # the costs only, no other section


def compiled_findings() -> list[Compiled]:
    return [
        Compiled("lightgbm", "1", "onnx", "passed parity", 5120, 5120, 1.4e-7, 6.0, 0.4),
        Compiled("knn", "1", "native", "not compiled", 0, None, None, 8.0, None),
    ]


def test_the_compiled_section_and_its_targets() -> None:
    data = findings(25_000, 2_500, 120)
    data.compiled = compiled_findings()
    data.measurements += [
        Measurement("floor", "lightgbm", 1, 2500, 0.4, 0.9, "one call", "runtime onnx"),
        Measurement("floor", "svm", 1, 400, 2.5, 4.0, "one call", "runtime native"),
        Measurement("pipeline", "svm", 100, 20_000, 40, 80, "accepted → row in S3"),
        Measurement("mlserver", "svm", 100, 9_000, 80, 120, "request → answer"),
        Measurement("mlserver", "lightgbm", 100, 20_000, 20, 140, "request → answer"),
    ]
    text = report.markdown(data, "bench.png")
    assert "## Compiled inference" in text
    assert "| lightgbm | 1 | onnx | 5,120 of 5,120 | 1.4e-07 | 6.000 | 0.400 | 15.0 x |" in text
    assert "| knn | 1 | native | — | — | 8.000 | — | — |" in text
    assert "- knn: not compiled." in text
    targets = "\n".join(report.targets_table(data))
    assert "in-process floor, 1 record, lightgbm: p50 ≤ 1 ms (runtime onnx) | 0.40 ms | met |" in (
        targets
    )
    assert "1 record, svm: p50 ≤ 1 ms (runtime native) | 2.50 ms | **missed** |" in targets
    assert "pipeline ≥ 2 x MLServer, svm, 100 records/request | 2.22 x | met |" in targets
    assert "pipeline ≥ 1.5 x MLServer, lightgbm, 100 records/request | 1.25 x | **missed** |" in (
        targets
    )
    assert "pipeline ≥ 2 x MLServer, knn, 100 records/request | — | not measured |" in targets


def test_a_quick_run_is_a_smoke_test_with_no_ratio_or_target() -> None:
    data = findings(25_000, 2_500, 120)
    data.compiled = compiled_findings()
    full = report.markdown(data, "bench.png")
    assert "## Ratios" in full
    assert "## Targets" in full
    assert "smoke test" not in full
    data.smoke = True
    text = report.markdown(data, "bench.png")
    assert "**A smoke test** (`--quick`)" in text
    assert "no ratio or target is computed from them" in text
    for absent in ("## Ratios", "## Targets", "native ÷ ONNX", " x |", "| met |"):
        assert absent not in text, absent
    assert "| lightgbm | 1 | onnx | 5,120 of 5,120 | 1.4e-07 | 6.000 | 0.400 |" in text


def test_the_canarys_row_is_judged_against_shadow_scoring_alone() -> None:
    found = {"canary": 27_000.0, "none": 50_000.0, "served_share": 0.251}
    shadow = {"on": 25_000.0, "off": 50_000.0}
    # 46% against shadow scoring's 50%: met; 58% is more than 5 points above: missed.
    assert cost_rows.canary_row(found, shadow)[1:] == (
        "46.0% (27,000 with, 50,000 without; the challenger served 25.1% of the rows); "
        "shadow scoring alone 50.0%",
        True,
    )
    assert cost_rows.canary_row({**found, "canary": 21_000.0}, shadow)[2] is False
    assert cost_rows.canary_row(found, {})[2] is None
    assert cost_rows.canary_row({}, shadow)[1:] == ("—", None)
