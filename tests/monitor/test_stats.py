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
