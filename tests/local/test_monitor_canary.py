"""`streamfn monitor`'s canary: a line per model from GET /models' entries, and the canary's
window drawn with the champion in shadow beside the rows it served."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from streamfn.core.canaries import ROLLED_BACK, WIDENING, Canary
from streamfn.local import monitor_view

SINCE_MS = 1_796_000_000_000  # 00:53:20 UTC


def entry(model: str, canary: dict[str, Any] | None) -> dict[str, Any]:
    return {"model": model, "canary": canary}


def test_each_model_with_a_canary_has_one_line_saying_its_share_step_or_end() -> None:
    widening = Canary("7", 0.25, WIDENING, 1, (0.05, 0.25, 0.5), 600.0, SINCE_MS,
                      "window held: macro F1 0.910 against 0.905")  # fmt: skip
    rolled = Canary("8", 0.0, ROLLED_BACK, 0, (0.05, 0.25), 600.0, SINCE_MS,
                    "error rate 4.0% above 1.0%")  # fmt: skip
    models = [
        entry("svm", None),
        entry("knn", {"version": "3", "serving": 0.1, "status": "CANARY_SHARE"}),
        entry("lightgbm", {**widening.to_json(), "serving": 0.25}),
        entry("other", {**rolled.to_json(), "serving": 0.0}),
    ]
    assert monitor_view.canary_lines(models) == [
        "knn: canary v3 serves 10% (CANARY_SHARE)",
        "lightgbm: canary v7 serves 25%, step 2 of 3 since 00:53:20 UTC: window held: macro F1 "
        "0.910 against 0.905",
        "other: canary v8 rolled back: error rate 4.0% above 1.0%",
    ]


def window(version: str, canary: dict[str, Any] | None, role: str) -> dict[str, Any]:
    """A window report of lightgbm `version` with one entry beside it."""
    beside = {"version": "1" if role == "champion" else "9", "in_shadow": role,
              "prediction": {"psi": 0.02, "flag": "ok"}, "agreement": 0.9, "compared": 400,
              "champion_psi": 0.02, "labelled": 300, "macro_f1": 0.8,
              "champion_macro_f1": 0.85}  # fmt: skip
    return {"model": "lightgbm", "version": version, "window_start": 1_796_000_000,
            "records": 400, "flag": "ok", "labelled": 0, "features": {},
            "prediction": {"psi": None, "flag": "none"}, "canary": canary,
            "challengers": [beside]}  # fmt: skip


def drawn(found: dict[str, Any]) -> str:
    out = Console(width=200, record=True)
    for table in monitor_view.tables({"windows": [found]}, 0.2):
        out.print(table)
    return " ".join(out.export_text().split())  # the captions wrap at the table's width


def test_the_canarys_window_shows_its_rows_and_the_champion_in_shadow_beside_them() -> None:
    canary = {"served": 400, "failed": 4, "error_rate": 0.0099}
    text = drawn(window("7", canary, "champion"))
    assert "lightgbm v7 · window 00:53:20 UTC · 400 records · ok · canary: served 400, failed 4 " \
        "(error rate 1.0%)" in text  # fmt: skip
    assert ("champion v1 in shadow: agrees with the canary on 90.0% of 400 rows · prediction PSI "
            "against the canary's 0.020 · 300 labelled: macro F1 0.800, the canary 0.850 on the "
            "same rows") in text  # fmt: skip
    # The champion's window: its challenger in shadow, and no canary figures.
    text = drawn(window("1", None, "challenger"))
    assert "challenger v9: agrees with the champion on 90.0% of 400 rows" in text
    assert "canary" not in text
