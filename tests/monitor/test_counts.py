"""What a batch's rows add to a window: records, bins, missing values, out of range, classes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from streamfn.core.keys import Keys
from streamfn.models.schemas import Column, ModelSchema
from streamfn.monitor import counts, windowing

SCHEMA = ModelSchema("m", "M", "1", (Column("x", "number"), Column("c", "string")))
PROFILE = {
    "features": {
        "x": {"kind": "number", "edges": [0.0, 1.0], "min": 0.0, "max": 2.0, "shares": [0.5, 0.5]},
        "c": {"kind": "category", "categories": ["a", "b"], "shares": [0.8, 0.2]},
    },
    "prediction": {"kind": "class", "classes": ["0", "1"], "shares": [0.5, 0.5]},
}


def test_a_batch_is_counted_per_bin_with_missing_and_out_of_range() -> None:
    frame = pd.DataFrame({
        "x": np.array([0.5, 1.5, np.nan, 9.0, -1.0]),
        "c": np.array(["a", "b", np.nan, "z", "a"], dtype=object),
    })  # fmt: skip
    found = counts.batch_fields(SCHEMA, frame, [0, 1, 1, 2, 0], PROFILE)
    assert found == {
        "records": 5,
        "b:x:0": 2, "b:x:1": 2, "m:x": 1, "o:x": 2,  # -1 in the first bin, 9 in the last
        "b:c:0": 2, "b:c:1": 1, "b:c:(other)": 1, "m:c": 1, "o:c": 1,
        "p:0": 2, "p:1": 2, "p:2": 1,
    }  # fmt: skip


def test_windows_are_tumbling_in_seconds_of_received_at() -> None:
    assert windowing.window_of(1_700_000_099_999, 60) == 1_700_000_040
    assert windowing.window_of(1_700_000_100_000, 60) == 1_700_000_100
    assert Keys().window("svm", "3", 60) == "streamfn:monitor:svm:3:60"
