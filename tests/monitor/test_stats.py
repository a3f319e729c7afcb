"""A window's statistics from counts: PSI, flags, and the scores scikit-learn would give."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from sklearn.metrics import accuracy_score, f1_score

from streamfn.monitor import stats

PROFILE = {
    "features": {
        "x": {"kind": "number", "edges": [0, 1], "max": 2, "shares": [0.5, 0.5], "null_share": 0.1},
        "c": {"kind": "category", "categories": ["a", "b"], "shares": [0.8, 0.2], "null_share": 0},
    },
    "prediction": {"kind": "class", "classes": ["0", "1"], "shares": [0.5, 0.5]},
}


def test_psi_of_the_same_shares_is_zero_and_grows_with_the_shift() -> None:
    assert stats.psi([50, 50], [0.5, 0.5]) == 0.0
    moved = stats.psi([80, 20], [0.5, 0.5])
    assert moved == pytest.approx(0.3 * math.log(0.8 / 0.5) - 0.3 * math.log(0.2 / 0.5))
    assert math.isfinite(stats.psi([100, 0], [0.5, 0.5]))  # an empty bin is floored


def test_flags_follow_the_thresholds() -> None:
    assert [stats.flag_of(v, 0.2) for v in (0.05, 0.1, 0.19, 0.2, 3.0)] == [
        "ok", "warn", "warn", "drift", "drift"
    ]  # fmt: skip


def test_a_window_report_names_each_input_and_flags_only_with_enough_records() -> None:
    counts = {"records": 300, "b:x:0": 150, "b:x:1": 120, "m:x": 30, "o:x": 4,
              "b:c:0": 60, "b:c:(other)": 240, "o:c": 240, "p:0": 150, "p:1": 150}  # fmt: skip
    report = stats.window_report(counts, PROFILE, min_records=200, drift_psi=0.2)
    assert report["features"]["x"] == {"psi": round(stats.psi([150, 120], [0.5, 0.5]), 4),
                                       "missing_share": 0.1,
                                       "reference_missing_share": 0.1, "out_of_range": 4,
                                       "flag": "ok"}  # fmt: skip
    assert report["features"]["c"]["flag"] == "drift"
    assert report["prediction"] == {"psi": 0.0, "shares": {"0": 0.5, "1": 0.5}, "flag": "ok"}
    assert report["flag"] == "drift"
    few = stats.window_report(counts, PROFILE, min_records=1000, drift_psi=0.2)
    assert few["flag"] == "too few records"
    assert {f["flag"] for f in few["features"].values()} == {"ok"}
    assert stats.window_report(counts, None, 200, 0.2)["flag"] == "no reference"


def test_scores_are_scikit_learns_on_the_same_labels() -> None:
    rng = random.Random(6)
    truth = [rng.choice("012") for _ in range(500)]
    predicted = [t if rng.random() < 0.7 else rng.choice("012") for t in truth]
    cells = Counter(f"l:{t}:{p}" for t, p in zip(truth, predicted, strict=True))
    labelled, accuracy, macro_f1 = stats.scores(cells)
    assert labelled == 500
    assert accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert stats.scores({}) == (0, None, None)


def test_a_class_only_predicted_or_only_true_counts_in_macro_f1_as_scikit_learn_counts_it() -> None:
    truth = ["0", "0", "1", "1", "3"]
    predicted = ["0", "2", "1", "0", "1"]  # 2 is never true, 3 never predicted
    cells = Counter(f"l:{t}:{p}" for t, p in zip(truth, predicted, strict=True))
    _, accuracy, macro_f1 = stats.scores(cells)
    assert accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"))


def test_a_canary_window_turned_is_the_challengers_shadow_counts_on_the_same_rows() -> None:
    # The challenger v2 served three rows, the champion v1 scored them in shadow; labelled.
    # (truth, challenger, champion): the challenger is right twice, the champion once.
    rows = [("0", "0", "1"), ("1", "1", "1"), ("2", "2", "0")]
    canary: Counter[str] = Counter({"records": 3, "canary": 3, "s:1:n": 3})
    as_shadow: Counter[str] = Counter({"s:2:n": 3})
    for truth, challenger, champion in rows:
        canary[f"p:{challenger}"] += 1
        canary[f"l:{truth}:{challenger}"] += 1
        canary["s:1:a"] += challenger == champion
        canary[f"s:1:c:{challenger}:{champion}"] += 1
        canary[f"s:1:l:{truth}:{champion}"] += 1
        canary[f"s:1:k:{truth}:{challenger}"] += 1
        # What the champion's window counts of the same rows with the challenger in shadow.
        as_shadow[f"s:2:p:{challenger}"] += 1
        as_shadow["s:2:a"] += challenger == champion
        as_shadow[f"s:2:c:{champion}:{challenger}"] += 1
        as_shadow[f"s:2:l:{truth}:{challenger}"] += 1
        as_shadow[f"s:2:k:{truth}:{champion}"] += 1
    canary["s:1:e:0:1"], canary["s:1:ke:0:0"] = 700_000, 900_000
    as_shadow["s:2:ke:0:1"], as_shadow["s:2:e:0:0"] = 700_000, 900_000
    assert stats.turned(canary, "2", "1") == +as_shadow
    summed = stats.paired([("1", as_shadow), ("2", canary), ("3", canary)], "1", "2")
    report = stats.challenger_report(summed, "2", None, 0.2)
    assert (report["compared"], report["labelled"]) == (6, 6)
    assert (report["accuracy"], report["champion_accuracy"]) == (1.0, round(1 / 3, 4))


def test_the_prediction_psi_against_the_champion_is_zero_when_their_classes_match() -> None:
    assert stats.champion_psi({"0": {"1": 5}, "1": {"0": 5}}) == 0.0
    assert stats.champion_psi({"0": {"0": 9, "1": 1}}) > 0.2
    assert stats.champion_psi({}) is None


def test_a_challengers_canary_window_reports_its_error_rate_and_the_champion_in_shadow() -> None:
    counts = {"records": 90, "canary": 90, "canary_failed": 10, "s:1:n": 90, "s:1:a": 80}
    report = stats.window_report(counts, None, 50, 0.2)
    assert report["canary"] == {"served": 90, "failed": 10, "error_rate": 0.1}
    assert [(c["version"], c["in_shadow"]) for c in report["challengers"]] == [("1", "champion")]
    plain = stats.window_report({"records": 90, "s:2:n": 90}, None, 50, 0.2)
    assert plain["canary"] is None
    assert plain["challengers"][0]["in_shadow"] == "challenger"
