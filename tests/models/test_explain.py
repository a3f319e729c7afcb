"""Reason codes: exact TreeSHAP, summed back to the user's inputs, checked against the libraries
themselves (LightGBM's own raw scores and contributions; shap for a scikit-learn forest)."""

from __future__ import annotations

import numpy as np
import pytest

from streamfn.core.settings import SEED_MODELS
from streamfn.data import training
from streamfn.models import explain
from streamfn.models.seed import CATEGORICAL, FEATURE_NAMES


@pytest.fixture(scope="module")
def lightgbm_pipeline(sqlite_registry: str) -> object:
    import mlflow

    mlflow.set_tracking_uri(sqlite_registry)
    return mlflow.sklearn.load_model(f"models:/{SEED_MODELS['lightgbm']}/1")


def test_contributions_and_the_expected_value_are_lightgbms_raw_score(
    lightgbm_pipeline: object,
) -> None:
    frame = training.load_split().x_test.head(500)
    explainer = explain.explainer_of(lightgbm_pipeline, FEATURE_NAMES)
    predicted = explain.predicted_index(lightgbm_pipeline, frame)
    found = explainer.contributions(frame, predicted)
    assert found.values.shape == (500, len(FEATURE_NAMES))
    booster = lightgbm_pipeline[-1].booster_  # type: ignore[index]
    raw = booster.predict(explainer.features(frame), raw_score=True)
    chosen = raw[np.arange(500), predicted]
    assert np.abs(found.values.sum(axis=1) + found.expected - chosen).max() < 1e-6


def test_a_one_hot_group_is_summed_back_to_its_input_in_the_librarys_order(
    lightgbm_pipeline: object,
) -> None:
    frame = training.load_split().x_test.head(200)
    explainer = explain.explainer_of(lightgbm_pipeline, FEATURE_NAMES)
    predicted = explain.predicted_index(lightgbm_pipeline, frame)
    found = explainer.contributions(frame, predicted)
    # LightGBM's contributions straight from the booster, summed by the transformed names.
    prepare = lightgbm_pipeline[:-1]  # type: ignore[index]
    names = [str(n).split("__", 1)[-1] for n in prepare.get_feature_names_out()]
    matrix = np.asarray(prepare.transform(frame), dtype=np.float64)
    direct = lightgbm_pipeline[-1].booster_.predict(matrix, pred_contrib=True)  # type: ignore[index]
    width = matrix.shape[1] + 1
    per_row = direct.reshape(len(frame), -1, width)[np.arange(len(frame)), predicted, :-1]
    for input_name in CATEGORICAL:
        columns = [i for i, n in enumerate(names) if n.startswith(input_name + "_")]
        assert columns, input_name
        np.testing.assert_allclose(found.values[:, FEATURE_NAMES.index(input_name)],
                                   per_row[:, columns].sum(axis=1), atol=1e-12)  # fmt: skip
    top = explain.reasons(found, 3)
    for i, row in enumerate(top):
        expected = sorted(FEATURE_NAMES, key=lambda n: -found.values[i, FEATURE_NAMES.index(n)])
        assert [name for name, _ in row] == expected[:3]
        assert row[0][1] >= row[1][1] >= row[2][1]


def test_a_scikit_learn_forest_is_explained_by_shap_to_its_prediction() -> None:
    from sklearn.ensemble import RandomForestClassifier

    split = training.load_split()
    pipeline = training.build_pipeline(RandomForestClassifier(n_estimators=20, max_depth=6,
                                                              random_state=0))  # fmt: skip
    pipeline.fit(split.x_train.head(3000), split.y_train[:3000])
    frame = split.x_test.head(100)
    explainer = explain.explainer_of(pipeline, FEATURE_NAMES)
    predicted = explain.predicted_index(pipeline, frame)
    found = explainer.contributions(frame, predicted)
    # For a forest, the contributions sum to the predicted class's probability less the mean.
    probability = pipeline.predict_proba(frame)[np.arange(100), predicted]
    assert np.abs(found.values.sum(axis=1) + found.expected - probability).max() < 1e-6


def test_models_without_an_exact_method_are_refused_with_the_reason(
    sqlite_registry: str,
) -> None:
    import mlflow

    mlflow.set_tracking_uri(sqlite_registry)
    for api_name in ("svm", "knn"):
        model = mlflow.sklearn.load_model(f"models:/{SEED_MODELS[api_name]}/1")
        with pytest.raises(explain.NotExplainableError, match="no exact attribution"):
            explain.explainer_of(model, FEATURE_NAMES)
    assert explain.mean_attribution(model, training.load_split().x_test.head(5),
                                    FEATURE_NAMES) is None  # fmt: skip
