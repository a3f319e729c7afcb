"""Validation compiled for a schema that is not the seed's: integers, booleans, free strings and
required columns, on the fast paths and the error path alike."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamfn.api.responses import BodyError
from streamfn.ingest.validation import Validator
from streamfn.models.schemas import Column, ModelSchema

SCHEMA = ModelSchema("m", "M", "1", (
    Column("count", "integer", required=True, low=0, high=10),
    Column("ratio", "number", low=0, high=1),
    Column("label", "string"),
    Column("kind", "string", categories=("Red", "Blue")),
    Column("active", "boolean"),
))  # fmt: skip
CHECK = Validator(SCHEMA)


def refused(record: dict[str, Any]) -> list[tuple[list[Any], str]]:
    with pytest.raises(BodyError) as info:
        CHECK.validate_records([record], 10)
    return [(e["loc"], e["type"]) for e in info.value.errors]


def test_a_record_that_fits_comes_back_canonical() -> None:
    sent = {"COUNT": 3, "ratio": 0.5, "label": "free text", "kind": "red", "active": True}
    assert CHECK.validate_records([sent], 10) == [
        {"count": 3, "ratio": 0.5, "label": "free text", "kind": "Red", "active": True}
    ]


def test_an_integral_float_is_an_integer_and_a_fraction_is_not() -> None:
    assert CHECK.validate_records([{"count": 3.0}], 10) == [{"count": 3}]
    assert refused({"count": 3.5}) == [(["body", "data", 0, "count"], "int_type")]


@pytest.mark.parametrize(
    ("record", "field", "type_"),
    [
        ({"ratio": 0.5}, "count", "missing"),
        ({"count": None}, "count", "missing"),
        ({"count": 11}, "count", "out_of_range"),
        ({"count": 1, "active": "yes"}, "active", "bool_type"),
        ({"count": 1, "active": 1}, "active", "bool_type"),
        ({"count": 1, "label": "x" * 129}, "label", "string_too_long"),
        ({"count": 1, "label": 4}, "label", "string_type"),
        ({"count": 1, "kind": "Green"}, "kind", "enum"),
        ({"count": True}, "count", "number_type"),
    ],
)
def test_each_problem_is_named(record: dict[str, Any], field: str, type_: str) -> None:
    assert refused(record) == [(["body", "data", 0, field], type_)]


def test_the_fast_paths_agree_with_the_error_path_on_random_records() -> None:
    rng = random.Random(9)
    keys = ["count", "Count", "ratio", "label", "kind", "active", "Employee ID", "bogus"]
    values: list[object] = [None, True, False, 0, 1, 3, 10, 11, 0.5, 2.5, "Red", "blue", "x", "",
                            "y" * 200, [], {}]  # fmt: skip
    for _ in range(20_000):
        record = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 5))}
        expected, errors = CHECK.record_errors(0, record)
        fast = CHECK.fast_record(record)
        # The fast path may refuse what the error path accepts (a float integer), never more.
        assert fast is None or fast == expected, (record, errors)
        assert (expected is None) == bool(errors)
        assert CHECK.as_sent(dict(record)) in (None, fast, record)
