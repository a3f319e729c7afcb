"""One source for every figure: the docs quote only what BENCHMARKS.md and the ceilings file hold,
and the check fails on a figure planted in a doc of a repository made for the test."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from streamfn.docs import figures

ROOT = Path(__file__).resolve().parents[2]
TIMES = "\u00d7"  # the multiplication sign the docs write ratios with

BENCHMARKS = """\
# streamfn bench

| design | records/request | records/s | p50 ms | p99 ms |
|---|---:|---:|---:|---:|
| ingest alone | 100 | 174,745 | 3.8 | 14.7 |

| model | pipeline ÷ mlflow serve |
|---|---:|
| svm | 20.7 x |

Shadow scoring adds 17.0 µs per record.
"""
CEILINGS = """\
| part | shape | rate | notes |
|---|---|---|---|
| poller | 1 record/entry | 5,864 entries/s | poller cores 0.89, result key B 344, µs/entry 21 |

| row | run 3 | run 4 |
|---|---|---|
| ingest, 1 record/request (requests/s) | 4,106 | 5,083 |
"""


def repository(tmp_path: Path, doc: str, readme: str = "# x\n") -> Path:
    """A repository with the two sources above, a README and one page, docs/page.md."""
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "BENCHMARKS.md").write_text(BENCHMARKS)
    (tmp_path / "benchmarks" / "ceilings.md").write_text(CEILINGS)
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "docs" / "page.md").write_text(doc)
    return tmp_path


def flagged(tmp_path: Path, doc: str) -> list[str]:
    """The figures of docs/page.md that the check finds without a source."""
    return [f.text for f in figures.unsourced(repository(tmp_path, doc))]


def test_every_figure_in_the_docs_has_a_source() -> None:
    missing = figures.unsourced(ROOT)
    assert not missing, "\n".join(map(str, missing))


def test_the_docs_are_read_for_figures_at_all() -> None:
    # The check passing on the docs means something only while it finds their figures: the
    # README's ratios against mlflow serve, and Scaling's quotes of the ceilings.
    readme = figures.file_figures(ROOT / "README.md", "README.md")["prose"]
    assert {(f.value, f.unit) for f in readme} >= {(Decimal("20.7"), "x"), (Decimal("35.6"), "x")}
    scaling = figures.file_figures(ROOT / "docs" / "SCALING.md", "SCALING.md")
    assert (Decimal("4106"), "/s") in {(f.value, f.unit) for f in scaling["prose"]}
    assert len(scaling["derived"]) > 50


def test_a_planted_wrong_figure_fails_the_check(tmp_path: Path) -> None:
    doc = "The ingest's p99 at 100 records per request is 15.8 ms (BENCHMARKS.md).\n"
    repo = repository(tmp_path, doc)
    [missing] = figures.unsourced(repo)
    assert (missing.value, missing.unit, missing.path, missing.line) == (
        Decimal("15.8"), "ms", "docs/page.md", 1,
    )  # fmt: skip
    assert figures.main([str(repo)]) == 1


def test_the_sources_value_passes_and_may_be_rounded(tmp_path: Path) -> None:
    doc = (
        f"The ingest's p99 is 14.7 ms, about 15 ms; 174,745 records/s; 20.7{TIMES} mlflow serve.\n"
        "A poller: 5,864 records per second on 0.89 of a core; a result key takes 344 bytes.\n"
        "Shadow scoring: 17 µs a record. Ingest: 4,106 requests/s (5,083 on a quiet machine).\n"
    )
    assert flagged(tmp_path, doc) == []
    assert figures.main([str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("doc", "wrong"),
    [
        ("The p99 is 14.7 µs.", "14.7 µs"),  # the source's number in another unit
        ("A result key takes 312 bytes.", "312 bytes"),
        ("Ingest alone: 5,256 requests/s.", "5,256 requests/s"),
        (f"It is 21.7{TIMES} faster.", f"21.7{TIMES}"),
        ("Ingest alone: 4,106 and 4,500 requests/s.", "4,106 and 4,500 requests/s"),
        ("| part | p99 ms |\n|---|---:|\n| ingest | 15.8 |", "15.8 (ms)"),  # a header's unit
        ("| row | run |\n|---|---:|\n| ingest (requests/s) | 5,256 |", "5,256 (/s)"),  # a row's
    ],
)
def test_a_figure_no_source_has_is_flagged(tmp_path: Path, doc: str, wrong: str) -> None:
    assert wrong in flagged(tmp_path, doc + "\n")


def test_settings_counts_and_code_are_not_figures(tmp_path: Path) -> None:
    doc = (
        "`BATCH_WINDOW_MS=100 ms` in code, 40 records written twice, a 2 s node timeout,\n"
        f"256 KiB as an SQS entry, p99, v1.2, 2026-12-03, lagCount 1000 {TIMES} maxReplicaCount.\n"
        "[a link](../BENCHMARKS.md#99-ms) <!-- 12 ms in a comment -->\n"
    )
    assert flagged(tmp_path, doc) == []


def test_a_walk_through_may_quote_its_own_output_and_no_other_page_may(tmp_path: Path) -> None:
    doc = "```\nsent 60,000 in 120.3 s: 499 records/s\n```\n\nIt sent 499 records/s.\n"
    assert flagged(tmp_path, doc) == []
    (tmp_path / "docs" / "other.md").write_text("The producer sends 499 records/s.\n")
    assert [f.path for f in figures.unsourced(tmp_path)] == ["docs/other.md"]


def test_a_derived_block_is_exempt_and_quotable(tmp_path: Path) -> None:
    doc = (
        "<!-- figures: derived: 4,106 requests/s at 70% -->\n"
        "Ingest at 70%: 2,874 requests/s.\n"
        "<!-- /figures -->\n"
        "So a worker takes 2,874 requests/s, not 3,000 requests/s.\n"
    )
    assert flagged(tmp_path, doc) == ["3,000 requests/s"]


def test_a_derived_block_left_open_is_an_error(tmp_path: Path) -> None:
    repo = repository(tmp_path, "<!-- figures: derived: all of it -->\n15.8 ms\n")
    with pytest.raises(figures.UnclosedBlockError, match=r"docs/page\.md"):
        figures.unsourced(repo)
    assert figures.main([str(repo)]) == 1


def test_each_allowed_figure_is_still_in_its_doc_and_would_fail_without_its_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stale entry would excuse the next figure that happens to take its value.
    allowed = set(figures.ALLOWED)
    monkeypatch.setattr(figures, "ALLOWED", {})
    missing = {(Path(f.path).name, str(f.value), f.unit) for f in figures.unsourced(ROOT)}
    assert allowed <= missing


def test_another_folder_of_docs_is_checked_against_these_sources(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("The ingest's p99 is 15.8 ms.\n")
    assert figures.main([str(ROOT), "--docs", str(tmp_path)]) == 1
