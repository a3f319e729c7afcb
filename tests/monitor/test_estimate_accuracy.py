"""The estimates against the truth, on windows of the size the issue names (60 s at 500
records/s: 30,000 records), from the producer's samplers and the seed's calibrated versions,
through the window counts and report the infer function and the closer use."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from streamfn.core.settings import SEED_MODELS, defaults
from streamfn.data.samplers import for_models
from streamfn.models.cache import LoadedModel, ModelCache
from streamfn.models.explain import predicted_index
from streamfn.models.seed import burn_class
from streamfn.monitor import counts, stats

pytestmark = pytest.mark.slow

RECORDS = 30_000
FATIGUE = "Mental Fatigue Score=+2.5"  # the input the models lean on most
TEAM = "Team Size=*1.6"  # one the trees hardly use


@pytest.fixture(scope="module")
def models(sqlite_registry: str) -> ModelCache:
    return ModelCache(sqlite_registry, "champion", 3600, SEED_MODELS)


def window(
    model: LoadedModel, seed: int = 7, explain: bool = False, **drift: str
) -> dict[str, Any]:
    """The report of one window of RECORDS labelled records drawn as `drift` says."""
    sampler = for_models(defaults(), [model.api_name], seed=seed, **drift)[model.api_name]
    records, rates = sampler.labelled(RECORDS)  # type: ignore[attr-defined]
    columns = model.columns(records)
    values, found = model.outputs(columns, model.calibrates_probabilities)
    calibrated = model.calibrated(columns, found if model.calibrates_probabilities else None)
    fields: Counter[str] = counts.batch_fields(model.schema, columns, values, model.profile)
    fields.update(counts.estimated_fields(calibrated, values, model.classes))
    fields.update(Counter(f"l:{burn_class(r)}:{v}" for r, v in zip(rates, values, strict=True)
                          if r is not None))  # fmt: skip
    if explain:
        frame = model.frame(records)
        explainer = model.explainer
        assert explainer is not None
        found_c = explainer.contributions(frame, predicted_index(model.estimator, frame))
        fields.update(counts.attribution_fields(list(found_c.inputs), found_c.values))
    return stats.window_report(fields, model.profile, 1000, 0.2)


@pytest.mark.parametrize("api_name", list(SEED_MODELS))
def test_on_clean_traffic_the_estimate_is_the_realised_macro_f1(
    models: ModelCache, api_name: str
) -> None:
    found = window(models.get(api_name))
    # Measured here: LightGBM 0.010, KNN 0.008, SVC (calibrated from its margins) 0.020.
    assert abs(found["estimated_macro_f1"] - found["macro_f1"]) <= 0.03
    assert found["estimate_gap"]["flag"] == "ok"
    assert found["flag"] == "ok"


def test_inputs_moved_with_labels_as_drawn_part_the_estimate_from_the_truth(
    models: ModelCache,
) -> None:
    lightgbm = models.get("lightgbm")
    clean, moved = window(lightgbm), window(lightgbm, drift=FATIGUE)
    # P(label | inputs) changed: the estimate cannot see it and stays up, the labels fall.
    assert moved["estimated_macro_f1"] >= clean["estimated_macro_f1"] - 0.02
    assert moved["macro_f1"] <= clean["macro_f1"] - 0.2
    assert moved["estimate_gap"]["flag"] == "drift"
    assert moved["features"]["Mental Fatigue Score"]["flag"] == "drift"


def test_labels_that_follow_the_moved_inputs_are_tracked_by_the_estimate(
    models: ModelCache,
) -> None:
    found = window(models.get("lightgbm"), drift=FATIGUE, labels="follow")
    assert found["features"]["Mental Fatigue Score"]["flag"] == "drift"  # the inputs moved
    assert abs(found["estimated_macro_f1"] - found["macro_f1"]) <= 0.03  # measured 0.018
    assert found["estimate_gap"]["flag"] == "ok"


def test_a_concept_shift_is_quiet_in_psi_and_the_estimate_but_not_in_the_labels(
    models: ModelCache,
) -> None:
    lightgbm = models.get("lightgbm")
    clean, shifted = window(lightgbm), window(lightgbm, concept=FATIGUE)
    assert all(f["flag"] == "ok" for f in shifted["features"].values())
    assert shifted["prediction"]["flag"] == "ok"
    assert shifted["estimated_macro_f1"] == pytest.approx(clean["estimated_macro_f1"], abs=0.01)
    assert shifted["macro_f1"] <= clean["macro_f1"] - 0.2
    assert shifted["estimate_gap"]["flag"] == "drift"


def test_attribution_drift_follows_the_models_reasons_not_its_inputs(
    models: ModelCache,
) -> None:
    lightgbm = models.get("lightgbm")
    clean = window(lightgbm, explain=True)["attribution"]
    assert clean["flag"] == "ok"
    assert clean["ndcg"] > 0.99
    assert sum(clean["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    top = max(clean["shares"], key=clean["shares"].get)
    assert top == "Mental Fatigue Score"
    assert clean["shares"][top] > 0.6  # one input carries most of the trees' reasons
    hardly = window(lightgbm, explain=True, drift=TEAM)
    assert hardly["features"]["Team Size"]["flag"] == "drift"  # PSI sees the move
    assert hardly["attribution"]["flag"] == "ok"  # the model's reasons do not change
    # Moving the input that matters moves its values, not the model's reliance on it: fatigue
    # stays the first reason, so Clarify's nDCG stays near 1 and is not flagged (measured 0.999;
    # docs/monitoring.md says so). PSI flags the input, and the estimate gap the labels' fall.
    matters = window(lightgbm, explain=True, drift=FATIGUE)
    assert max(matters["attribution"]["shares"], key=matters["attribution"]["shares"].get) == top
    assert matters["attribution"]["ndcg"] > 0.99
    assert matters["features"]["Mental Fatigue Score"]["flag"] == "drift"
    assert matters["estimate_gap"]["flag"] == "drift"
