"""Performance without labels (CBPE's expected confusion cells) and attribution drift (nDCG of
the live ranking of inputs against the reference's), from a window's counts."""

from __future__ import annotations

import numpy as np
import pytest

from streamfn.monitor import counts, stats


def test_expected_cells_give_the_scores_labels_would_in_expectation() -> None:
    rng = np.random.default_rng(7)
    probabilities = rng.dirichlet(np.ones(3) * 0.7, 30_000)
    predicted = probabilities.argmax(axis=1)
    truth = np.array([rng.choice(3, p=p) for p in probabilities])
    found = counts.estimated_fields(probabilities, predicted.tolist(), [0, 1, 2])
    # Two batches merge by addition, as the window's Redis hash adds them.
    halves = counts.estimated_fields(probabilities[:10_000], predicted[:10_000].tolist(), [0, 1, 2])
    halves.update(counts.estimated_fields(probabilities[10_000:], predicted[10_000:].tolist(),
                                          [0, 1, 2]))  # fmt: skip
    assert all(abs(found[k] - halves[k]) <= 2 for k in found)
    rows, accuracy, macro_f1 = stats.estimated_scores(found)
    assert rows == pytest.approx(30_000, abs=0.01)
    labelled = {f"l:{t}:{p}": 0 for t in range(3) for p in range(3)}
    for t, p in zip(truth, predicted, strict=True):
        labelled[f"l:{t}:{p}"] += 1
    _, true_accuracy, true_f1 = stats.scores(labelled)
    assert accuracy == pytest.approx(true_accuracy, abs=0.01)
    assert macro_f1 == pytest.approx(true_f1, abs=0.01)


def test_ndcg_is_one_for_the_reference_order_and_falls_when_the_top_changes() -> None:
    reference = {"fatigue": 2.0, "allocation": 0.25, "hours": 0.1, "team": 0.01}
    assert stats.ndcg(reference, reference) == pytest.approx(1.0)
    small = {**reference, "team": 0.02, "hours": 0.05}  # the bottom swaps: little changes
    assert stats.ndcg(small, reference) > 0.99
    moved = {**reference, "fatigue": 0.05}  # the input that mattered most barely matters
    assert stats.ndcg(moved, reference) < 0.9


def test_the_attribution_report_flags_a_window_once_it_has_rows_enough() -> None:
    reference = {"fatigue": 2.0, "allocation": 0.25, "hours": 0.1}
    live = np.array([[0.05, 0.3, 0.1]] * 300)
    window = counts.attribution_fields(["fatigue", "allocation", "hours"], live)
    report = stats.attribution_report(window, reference, threshold=0.9, min_rows=200)
    assert report is not None
    assert report["explained"] == 300
    assert report["flag"] == "drift"
    assert report["shares"]["allocation"] == pytest.approx(0.3 / 0.45, abs=1e-4)
    names = ["fatigue", "allocation", "hours"]
    few = stats.attribution_report(counts.attribution_fields(names, live[:10]), reference, 0.9, 200)
    assert few is not None
    assert few["flag"] == "ok"  # 10 rows: never flagged
    assert stats.attribution_report({}, reference, 0.9, 200) is None
