"""The producer's samplers for a model it has no copula for: the reference profile, a CSV file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streamfn.data.samplers import ProfileSampler, RowSampler, SamplerError, drifted
from streamfn.data.synth import EmployeeIds
from streamfn.ingest.validation import Validator
from streamfn.models.schemas import Column, ModelSchema

SCHEMA = ModelSchema("m", "M", "1", (
    Column("x", "number", required=True, low=0, high=10),
    Column("n", "integer", low=1, high=5),
    Column("c", "string", categories=("a", "b")),
))  # fmt: skip
PROFILE = {"features": {
    "x": {"kind": "number", "edges": [0, 5], "max": 10, "shares": [0.9, 0.1], "null_share": 0.5},
    "n": {"kind": "number", "edges": [1, 3], "max": 5, "shares": [0.5, 0.5], "integer": True,
          "null_share": 0.2},
    "c": {"kind": "category", "categories": ["a", "b"], "shares": [0.75, 0.25], "null_share": 0},
}}  # fmt: skip


def test_profile_records_fit_the_schema_and_follow_the_shares() -> None:
    rng = random.Random(2)
    records = ProfileSampler(PROFILE, SCHEMA, EmployeeIds(rng), rng).records(4000)
    assert len(Validator(SCHEMA).validate_records(records, 4000)) == 4000
    low_x = sum(r["x"] < 5 for r in records) / len(records)
    assert 0.87 < low_x < 0.93  # a required column is never left out, whatever its null share
    assert 0.17 < sum("n" not in r for r in records) / len(records) < 0.23
    assert all(isinstance(r["n"], int) for r in records if "n" in r)
    assert {r["n"] for r in records if "n" in r} == {1, 2, 3, 4, 5}
    assert 0.72 < sum(r["c"] == "a" for r in records) / len(records) < 0.78
    assert len({r["Employee ID"] for r in records}) == 4000


def test_csv_rows_are_resampled_with_their_columns_matched(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("X,N,c,other\n1.5,2,a,z\n9,,b,z\n")
    rng = random.Random(1)
    records = RowSampler(data, SCHEMA, EmployeeIds(rng), rng).records(50)
    kept = [{k: v for k, v in r.items() if k != "Employee ID"} for r in records]
    assert {tuple(sorted(r.items())) for r in kept} == {
        (("c", "a"), ("n", 2), ("x", 1.5)), (("c", "b"), ("x", 9.0))
    }  # fmt: skip
    assert len(Validator(SCHEMA).validate_records(records, 50)) == 50


def test_labels_stay_as_drawn_follow_the_moved_inputs_or_shift_with_the_concept() -> None:
    from streamfn.core.settings import defaults
    from streamfn.data.samplers import for_models

    settings = defaults()
    fatigue = "Mental Fatigue Score=+2.5"
    drawn = for_models(settings, ["lightgbm"], seed=5, drift=fatigue)["lightgbm"]
    follow = for_models(settings, ["lightgbm"], seed=5, drift=fatigue,
                        labels="follow")["lightgbm"]  # fmt: skip
    concept = for_models(settings, ["lightgbm"], seed=5, concept=fatigue)["lightgbm"]
    plain = for_models(settings, ["lightgbm"], seed=5)["lightgbm"]
    records, as_drawn = drawn.labelled(2000)  # type: ignore[attr-defined]
    moved, followed = follow.labelled(2000)  # type: ignore[attr-defined]
    kept, shifted = concept.labelled(2000)  # type: ignore[attr-defined]
    unmoved, original = plain.labelled(2000)  # type: ignore[attr-defined]
    assert records == moved  # the same inputs, moved the same way
    assert kept == unmoved  # a concept shift leaves the inputs as drawn
    assert as_drawn == original  # drawn: the unmoved record's labels
    # Burn Rate rises with fatigue under the copula: a record moved up is labelled no lower,
    # and a record the move left alone (fatigue absent) keeps its label.
    for before, after, record in zip(original, followed, unmoved, strict=True):
        if before is None:
            assert after is None
        elif record.get("Mental Fatigue Score") is None:
            assert after == before
        else:
            assert after >= before
    assert sum(followed_ > before for followed_, before in zip(followed, original, strict=True)
               if before is not None) > 1000  # fmt: skip
    assert shifted == followed  # labels of the moved record, inputs unmoved
    # Another model's sampler has no relation to move labels along: refused, not guessed.
    rng = random.Random(1)
    other = ProfileSampler(PROFILE, SCHEMA, EmployeeIds(rng), rng)
    with pytest.raises(SamplerError, match="relation"):
        drifted(other, "x=+1", SCHEMA, "follow")


def test_the_relation_moves_a_label_in_the_copulas_score_space() -> None:
    from streamfn.data.relation import Relation
    from streamfn.data.synth import load_profile

    relation = Relation(load_profile())
    record = {"Mental Fatigue Score": 5.0, "Resource Allocation": 4.0}
    assert relation.follow(0.45, record, dict(record)) == 0.45  # nothing moved, nothing changes
    assert relation.follow(None, record, {**record, "Mental Fatigue Score": 7.5}) is None
    up = relation.follow(0.45, record, {**record, "Mental Fatigue Score": 7.5})
    down = relation.follow(0.45, record, {**record, "Mental Fatigue Score": 2.5})
    assert down < 0.45 < up  # type: ignore[operator]
    # Fatigue carries most of Burn Rate in the copula (its weight is the largest by far).
    weights = relation.weights
    assert max(weights, key=lambda n: abs(weights[n])) == "Mental Fatigue Score"
