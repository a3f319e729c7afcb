"""`streamfn monitor`: GET /monitoring drawn as tables, one per model: each input's PSI in the
newest window with its flag in colour and words, a sparkline of its PSI over the windows, and a
challenger's comparison with the champion when one is scored in shadow; and each model's canary:
the share its challenger serves, the step, and in the challenger's window the rows it served."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

SPARKS = "▁▂▃▄▅▆▇█"
STYLES = {"ok": "green", "warn": "yellow", "drift": "bold red"}
MARKS = {"ok": "ok", "warn": "▲ warn", "drift": "■ drift"}


def sparkline(values: Sequence[float | None], top: float) -> str:
    """One character per value, oldest first, scaled to `top` (a missing value is a space)."""
    cells = []
    for value in values:
        if value is None:
            cells.append(" ")
        else:
            cells.append(SPARKS[min(int(value / top * (len(SPARKS) - 1)), len(SPARKS) - 1)])
    return "".join(cells)


def flag(value: str) -> Text:
    """A flag in words, coloured (colour is never the only sign)."""
    return Text(MARKS.get(value, value), style=STYLES.get(value, "dim"))


def when(start: int) -> str:
    """A window's start, UTC."""
    return dt.datetime.fromtimestamp(start, dt.UTC).strftime("%H:%M:%S")


def model_table(model: str, windows: list[dict[str, Any]], drift_psi: float) -> Table:
    """One model: its newest window's figures, and each input's PSI over the windows."""
    newest = windows[0]
    oldest_first = list(reversed(windows))
    scores = ""
    if newest.get("estimated_macro_f1") is not None:
        scores += (f" · estimated without labels: accuracy {newest['estimated_accuracy']:.3f}, "
                   f"macro F1 {newest['estimated_macro_f1']:.3f}")  # fmt: skip
    if newest["labelled"]:
        scores += (f" · {newest['labelled']:,} labelled: accuracy {newest['accuracy']:.3f}, "
                   f"macro F1 {newest['macro_f1']:.3f}")  # fmt: skip
    canary = newest.get("canary")
    if canary:
        scores += (f" · canary: served {canary['served']:,}, failed {canary['failed']:,} "
                   f"(error rate {canary['error_rate']:.1%})")  # fmt: skip
    title = (f"{model} v{newest['version']} · window {when(newest['window_start'])} UTC · "
             f"{newest['records']:,} records · {newest['flag']}{scores}")  # fmt: skip
    table = Table(title=title, title_justify="left")
    numbers = ("PSI", "missing", "ref.", "out of range")
    for column in ("input", "PSI", "flag", f"PSI, {len(windows)} windows", *numbers[1:]):
        table.add_column(column, justify="right" if column in numbers else "left")
    top = max([drift_psi] + [f["psi"] for w in windows for f in w["features"].values()])
    for name, feature in newest["features"].items():
        history = [w["features"].get(name, {}).get("psi") for w in oldest_first]
        table.add_row(
            name, f"{feature['psi']:.3f}", flag(feature["flag"]), sparkline(history, top),
            f"{feature['missing_share']:.1%}", f"{feature['reference_missing_share']:.1%}",
            f"{feature['out_of_range']:,}",
        )  # fmt: skip
    prediction = newest["prediction"]
    if prediction["psi"] is not None:
        history = [w["prediction"]["psi"] for w in oldest_first]
        table.add_row(Text("predictions", style="bold"), f"{prediction['psi']:.3f}",
                      flag(prediction["flag"]), sparkline(history, top), "", "", "")  # fmt: skip
    for challenger in newest.get("challengers", []):
        add_challenger(table, challenger, oldest_first, top)
    add_attribution(table, newest, oldest_first)
    return table


def add_attribution(
    table: Table, newest: dict[str, Any], oldest_first: list[dict[str, Any]]
) -> None:
    """A row for the attribution drift (nDCG against the reference's ranking, 1 the same order)
    and a caption line with the inputs that carry most of it."""
    attribution = newest.get("attribution")
    if not attribution:
        return
    history = [(w.get("attribution") or {}).get("ndcg") for w in oldest_first]
    gaps = [None if v is None else 1 - v for v in history]  # drawn as distance from 1
    ndcg = "—" if attribution["ndcg"] is None else f"{attribution['ndcg']:.3f}"
    table.add_row(Text("attribution (nDCG)", style="bold"), ndcg, flag(attribution["flag"]),
                  sparkline(gaps, 0.5), "", "", "")  # fmt: skip
    top = sorted(attribution["shares"].items(), key=lambda kv: -kv[1])[:3]
    line = (f"attribution of {attribution['explained']:,} explained rows: "
            + ", ".join(f"{name} {share:.0%}" for name, share in top))  # fmt: skip
    table.caption = "\n".join(filter(None, [table.caption, line]))  # type: ignore[list-item]
    table.caption_justify = "left"


def add_challenger(
    table: Table, challenger: dict[str, Any], oldest_first: list[dict[str, Any]], top: float
) -> None:
    """A row for a challenger's predictions, and a caption line comparing it with the champion."""
    version = challenger["version"]
    prediction = challenger["prediction"]
    history = [next((c["prediction"]["psi"] for c in w.get("challengers", [])
                     if c["version"] == version), None) for w in oldest_first]  # fmt: skip
    psi = "—" if prediction["psi"] is None else f"{prediction['psi']:.3f}"
    # In a canary's window the champion is the one in shadow, and `champion_*` the canary's.
    canary = challenger.get("in_shadow") == "champion"
    name = f"champion v{version} in shadow" if canary else f"challenger v{version}"
    table.add_row(Text(name, style="bold"), psi, flag(prediction["flag"]),
                  sparkline(history, top), "", "", "")  # fmt: skip
    share = "—" if challenger["agreement"] is None else f"{challenger['agreement']:.1%}"
    other = "the canary" if canary else "the champion"
    line = f"{name}: agrees with {other} on {share} of {challenger['compared']:,} rows"
    if challenger.get("champion_psi") is not None:
        line += f" · prediction PSI against {other}'s {challenger['champion_psi']:.3f}"
    if challenger["labelled"]:
        line += (f" · {challenger['labelled']:,} labelled: macro F1 {challenger['macro_f1']:.3f}, "
                 f"{other} {challenger['champion_macro_f1']:.3f} on the same rows")  # fmt: skip
    table.caption = "\n".join(filter(None, [table.caption, line]))  # type: ignore[list-item]
    table.caption_justify = "left"


def scores_table(model: str, windows: list[dict[str, Any]]) -> Table | None:
    """One row per window, oldest first: macro F1 from the labels beside the one estimated
    without them, and whether they part (None when no window has either)."""
    if not any(w.get("estimated_macro_f1") is not None or w["labelled"] for w in windows):
        return None
    table = Table(title=f"{model}: macro F1 per window, labels against estimate",
                  title_justify="left")  # fmt: skip
    for column in ("window (UTC)", "version", "records", "labelled", "macro F1", "estimated",
                   "gap", "flag"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("window (UTC)", "flag") else "right")
    for w in reversed(windows):
        gap = w.get("estimate_gap") or {}
        realised, estimated = w.get("macro_f1"), w.get("estimated_macro_f1")
        table.add_row(
            when(w["window_start"]), f"v{w['version']}", f"{w['records']:,}",
            f"{w['labelled']:,}", "—" if realised is None else f"{realised:.3f}",
            "—" if estimated is None else f"{estimated:.3f}",
            "—" if not gap else f"{gap['macro_f1']:+.3f}", flag(gap.get("flag", "—")),
        )  # fmt: skip
    table.caption = ("gap: labels minus estimate; drift when the labels fall 0.05 below it "
                     "(the relation of labels to inputs changed: concept drift)")  # fmt: skip
    table.caption_justify = "left"
    return table


def tables(answer: dict[str, Any], drift_psi: float) -> list[Table]:
    """Per model with windows, in the answer's order: its drift table, then its scores."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for window in answer["windows"]:
        by_model.setdefault(window["model"], []).append(window)
    found: list[Table] = []
    for model, windows in by_model.items():
        found.append(model_table(model, windows, drift_psi))
        scores = scores_table(model, windows)
        if scores is not None:
            found.append(scores)
    return found


def canary_lines(models: list[dict[str, Any]]) -> list[str]:
    """One line per model with a canary (GET /models' entries): the share its challenger
    serves, the step, or how it ended and why."""
    lines = []
    for entry in models:
        canary = entry.get("canary")
        if not canary:
            continue
        head = f"{entry['model']}: canary v{canary['version']}"
        if canary["status"] == "CANARY_SHARE":
            lines.append(f"{head} serves {canary['serving']:.0%} (CANARY_SHARE)")
        elif canary["status"] == "widening":
            since = dt.datetime.fromtimestamp(canary["since_ms"] / 1000, dt.UTC)
            step = f"step {canary['step'] + 1} of {len(canary['steps'])}"
            lines.append(f"{head} serves {canary['serving']:.0%}, {step} since "
                         f"{since:%H:%M:%S} UTC: {canary['reason']}")  # fmt: skip
        else:
            lines.append(f"{head} {canary['status']}: {canary['reason']}")
    return lines
