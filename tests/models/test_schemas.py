"""A version's schema read from its MLmodel and JSON artifacts: kinds, optional columns, outputs."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from streamfn.models import schemas
from streamfn.models.schemas import Column, ModelSchema, SchemaError
from streamfn.models.seed import FEATURE_NAMES


def mlmodel(inputs: list[dict] | None, outputs: list[dict] | None = None) -> str:
    signature = None if inputs is None else {
        "inputs": json.dumps(inputs), "outputs": json.dumps(outputs) if outputs else None
    }  # fmt: skip
    return yaml.safe_dump({"flavors": {"python_function": {}}, "signature": signature})


INPUTS = [
    {"type": "double", "name": "x", "required": True},
    {"type": "long", "name": "n", "required": False},
    {"type": "string", "name": "colour", "required": False},
    {"type": "boolean", "name": "flag"},
]


def test_columns_kinds_and_optional_columns_come_from_the_signature() -> None:
    constraints = {"features": {"x": {"min": 0, "max": 1}, "colour": {"categories": ["red"]}}}
    found = schemas.build("m", "M", "3", mlmodel(INPUTS, [{"type": "long"}]), constraints,
                          {"0": "no", "1": "yes"})  # fmt: skip
    assert found.columns == (
        Column("x", "number", True, 0.0, 1.0),
        Column("n", "integer", False),
        Column("colour", "string", False, categories=("red",)),
        Column("flag", "boolean", True),
    )
    assert (found.output, found.label(1), found.label(7)) == ("class", "yes", "7")
    assert not found.seed_layout


@pytest.mark.parametrize(
    ("outputs", "kind"),
    [
        ([{"type": "double"}], "number"),
        ([{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}], "number"),
        ([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}], "class"),
        ([{"type": "string"}], "class"),
        (None, "class"),
    ],
)
def test_a_number_out_is_a_regressor(outputs: list[dict] | None, kind: str) -> None:
    found = schemas.build("m", "M", "1", mlmodel(INPUTS[:1], outputs))
    assert found.output == kind
    assert found.label(2.5) == ("" if kind == "number" else "2.5")


def test_a_version_without_a_signature_is_refused() -> None:
    with pytest.raises(SchemaError, match="without a signature"):
        schemas.build("m", "M", "1", mlmodel(None))


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}},
        {"type": "array", "items": {"type": "string"}, "name": "tags"},
        {"type": "datetime", "name": "when"},
    ],
)
def test_inputs_of_another_kind_are_refused_naming_them(spec: dict) -> None:
    with pytest.raises(SchemaError, match="streamfn serves named columns"):
        schemas.build("m", "M", "1", mlmodel([spec]))


def test_a_schema_survives_its_json() -> None:
    found = schemas.build("m", "M", "1", mlmodel(INPUTS), {"features": {"x": {"min": -1}}})
    again = ModelSchema.from_json(json.loads(json.dumps(found.to_json())))
    assert again == found
    assert math.isinf(again.columns[0].high)


def test_the_seed_schema_is_the_feature_table_all_optional() -> None:
    seed = schemas.seed_schema()
    assert seed.names == FEATURE_NAMES
    assert seed.seed_layout
    assert not any(c.required for c in seed.columns)
    assert seed.label(2) == "High"
