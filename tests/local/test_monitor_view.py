"""`streamfn monitor`'s tables, drawn from GET /monitoring's windows."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from streamfn.local import monitor_view


def window(start: int, realised: float | None, estimated: float | None, gap: str | None) -> Any:
    return {
        "model": "lightgbm", "version": "1", "window_start": start, "records": 18_000,
        "labelled": 17_000 if realised is not None else 0, "macro_f1": realised,
        "accuracy": realised, "estimated_macro_f1": estimated, "estimated_accuracy": estimated,
        "estimate_gap": None if gap is None else {"macro_f1": (realised or 0) - (estimated or 0),
                                                  "flag": gap},
        "flag": gap or "ok", "prediction": {"psi": 0.0, "flag": "ok", "shares": {}},
        "features": {"Mental Fatigue Score": {"psi": 0.0, "flag": "ok", "missing_share": 0.0,
                                              "reference_missing_share": 0.0,
                                              "out_of_range": 0}},
    }  # fmt: skip


def drawn(tables: list[Any]) -> str:
    console = Console(width=120, record=True)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_each_window_shows_the_labels_macro_f1_beside_the_estimate_and_their_gap() -> None:
    windows = [window(1_796_200_120, 0.561, 0.893, "drift"), window(1_796_200_060, 0.876,
                                                                    0.884, "ok")]  # fmt: skip
    text = drawn(monitor_view.tables({"windows": windows}, 0.2))
    lines = [line for line in text.splitlines() if "│ v1" in line.replace("  ", " ")
             or " v1 " in line]  # fmt: skip
    rows = [line for line in lines if "0.884" in line or "0.893" in line]
    assert len(rows) == 2
    assert rows[0].index("0.876") < rows[0].index("0.884")  # oldest first: the clean window
    assert "-0.008" in rows[0]
    assert "-0.332" in rows[1]
    assert "drift" in rows[1]
    assert "concept drift" in text


def test_no_scores_table_without_labels_or_estimates() -> None:
    text = drawn(monitor_view.tables({"windows": [window(1_796_200_060, None, None, None)]}, 0.2))
    assert "labels against estimate" not in text
