"""Calibration (CBPE's footing): scores mapped to probabilities that match how often a class is
true, chosen by held-out folds, kept as JSON and applied with numpy."""

from __future__ import annotations

import json

import numpy as np

from streamfn.models import calibration


def overconfident(rows: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Three classes; the model's top probability says 0.9 where it is right 60% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, rows)
    right = rng.random(rows) < 0.6
    predicted = np.where(right, truth, (truth + rng.integers(1, 3, rows)) % 3)
    scores = np.full((rows, 3), 0.05)
    scores[np.arange(rows), predicted] = 0.9
    return scores, truth


def test_a_calibration_brings_probabilities_to_the_frequencies_they_claim() -> None:
    scores, truth = overconfident(6000)
    found = calibration.fit(scores, truth, [0, 1, 2], "predict_proba")
    assert found["method"] in ("isotonic", "platt")  # either beats the raw scores here
    assert found["calibration_error"][found["method"]] < found["calibration_error"]["none"]
    fresh, fresh_truth = overconfident(6000, seed=2)
    calibrated = calibration.apply(json.loads(json.dumps(found)), fresh)  # JSON round trip
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    top = calibrated.max(axis=1)
    assert abs(top.mean() - 0.6) < 0.03  # says what it means: right 60% of the time
    before = calibration.expected_calibration_error(fresh, fresh_truth)
    after = calibration.expected_calibration_error(calibrated, fresh_truth)
    assert after < before / 3


def test_calibrated_probabilities_are_kept_and_scores_without_probabilities_get_some() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 6000)
    honest = rng.dirichlet(np.ones(3), 6000)
    truth = np.array([rng.choice(3, p=p) for p in honest])  # true as often as they claim
    found = calibration.fit(honest, truth, ["a", "b", "c"], "predict_proba")
    assert found["classes"] == ["a", "b", "c"]
    kept = calibration.apply(found, honest)
    assert calibration.expected_calibration_error(kept, truth) < 0.03
    # An SVC's decision values: not probabilities; no "none" is offered, and rows sum to 1.
    decisions = honest * 4 - 2
    mapped = calibration.fit(decisions, truth, [0, 1, 2], "decision_function")
    assert "none" not in mapped["calibration_error"]
    assert np.allclose(calibration.apply(mapped, decisions).sum(axis=1), 1.0)
