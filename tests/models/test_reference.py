"""The reference profile: quantile bins that hold the data, category shares, null shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamfn.models import reference
from streamfn.models.schemas import Column, ModelSchema

SCHEMA = ModelSchema("m", "M", "1", (Column("x", "number"), Column("c", "string")))


def test_bins_hold_every_value_and_shares_sum_to_one() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b", "c"], 5000)})
    frame.loc[:99, "x"] = np.nan
    profile = reference.build(frame, SCHEMA, rng.integers(0, 2, 5000))
    x = profile["features"]["x"]
    assert len(x["edges"]) == reference.BINS
    assert sum(x["shares"]) == pytest.approx(1.0)
    assert max(x["shares"]) - min(x["shares"]) < 0.01  # quantile bins: even shares
    assert x["null_share"] == pytest.approx(0.02)
    assert x["min"] == x["edges"][0]
    c = profile["features"]["c"]
    assert sorted(c["categories"]) == ["a", "b", "c"]
    assert sum(c["shares"]) == pytest.approx(1.0)
    assert profile["prediction"]["classes"] == ["0", "1"]
    assert reference.constraints(profile)["features"]["c"] == {"categories": c["categories"]}


def test_a_column_of_few_values_gets_one_bin_per_value() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3, 1, 2, 3, 1, 2, 3, 3] * 10, "c": "a"})
    x = reference.build(frame, SCHEMA, np.zeros(100))["features"]["x"]
    assert x["edges"] == [1.0, 2.0, 3.0]
    assert x["shares"] == [0.3, 0.3, 0.4]
    assert reference.bin_shares(np.array([0.5, 1.0, 2.5, 3.0, 9.0]), x["edges"]) == [0.4, 0.2, 0.4]


def test_a_regressor_prediction_is_binned() -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "c": "a"})
    numbers = ModelSchema("m", "M", "1", SCHEMA.columns, "number")
    predicted = reference.build(frame, numbers, np.linspace(0, 1, 100))["prediction"]
    assert predicted["kind"] == "number"
    assert sum(predicted["shares"]) == pytest.approx(1.0)
