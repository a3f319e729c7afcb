"""A model's inputs and outputs as streamfn serves them, read from the registered version.

Names, types and optional columns come from the version's MLflow signature; ranges and categories
from its `feature_constraints.json` artifact when it has one; labels of integer classes from its
`labels.json`. Ingest validates records with it, the infer function builds frames and CSV columns
with it, and the producer draws records for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import yaml

from streamfn.models.seed import CLASS_LABELS, FEATURE_NAMES, FEATURES

CONSTRAINTS_FILE = "feature_constraints.json"
LABELS_FILE = "labels.json"
REFERENCE_FILE = "reference_profile.json"
MLMODEL_FILE = "MLmodel"

Kind = Literal["number", "integer", "string", "boolean"]
# MLflow signature type -> what a record's value must be.
_KINDS: dict[str, Kind] = {
    "double": "number", "float": "number", "long": "integer", "integer": "integer",
    "string": "string", "boolean": "boolean",
}  # fmt: skip
_NUMBER_OUTPUTS = frozenset({"double", "float"})


class SchemaError(ValueError):
    """A version streamfn cannot serve as it is (no signature, or columns of another kind)."""


@dataclass(frozen=True)
class Column:
    """One model input: its kind, whether a record must give it, and its allowed values."""

    name: str
    kind: Kind
    required: bool = False
    low: float = -math.inf
    high: float = math.inf
    categories: tuple[str, ...] = ()  # a string column's allowed values (none: any string)


@dataclass(frozen=True)
class ModelSchema:
    """What one registered version takes and gives."""

    model: str  # the API name
    registered_name: str
    version: str
    columns: tuple[Column, ...]
    output: Literal["class", "number"] = "class"
    labels: dict[str, str] = field(default_factory=dict)  # class as text -> label

    @property
    def names(self) -> tuple[str, ...]:
        """The input columns, in signature order."""
        return tuple(c.name for c in self.columns)

    @property
    def seed_layout(self) -> bool:
        """Whether the inputs are the burn-out feature table: its CSV keeps the seed's columns."""
        return self.names == FEATURE_NAMES

    def label(self, prediction: object) -> str:
        """The label of a predicted class ("" for a regressor's number)."""
        if self.output == "number":
            return ""
        text = str(prediction)
        return self.labels.get(text, text)

    def to_json(self) -> dict[str, Any]:
        """The schema as JSON (GET /models, the ingest's cache in Redis)."""
        document = asdict(self)
        for column in document["columns"]:
            column["low"] = None if math.isinf(column["low"]) else column["low"]
            column["high"] = None if math.isinf(column["high"]) else column["high"]
            column["categories"] = list(column["categories"])
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ModelSchema:
        """Read what to_json wrote."""
        columns = tuple(
            Column(c["name"], c["kind"], c["required"],
                   -math.inf if c["low"] is None else c["low"],
                   math.inf if c["high"] is None else c["high"], tuple(c["categories"]))
            for c in document["columns"]
        )  # fmt: skip
        return cls(document["model"], document["registered_name"], str(document["version"]),
                   columns, document["output"], dict(document["labels"]))  # fmt: skip


def signature_of(mlmodel: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) of an MLmodel file's signature; SchemaError when it has none."""
    signature = (yaml.safe_load(mlmodel) or {}).get("signature") or {}
    if not signature.get("inputs"):
        raise SchemaError("the version was logged without a signature: log it with one")
    outputs = signature.get("outputs")
    return json.loads(signature["inputs"]), json.loads(outputs) if outputs else []


def _column(spec: dict[str, Any], constraints: dict[str, Any]) -> Column:
    kind = _KINDS.get(spec.get("type", ""))
    if kind is None or "name" not in spec:
        described = spec.get("name") or spec.get("type")
        raise SchemaError(
            f"input {described!r} is a {spec.get('type')}: streamfn serves named columns of "
            f"{', '.join(sorted(_KINDS))}"
        )
    limits = constraints.get(spec["name"], {})
    return Column(
        spec["name"],
        kind,
        bool(spec.get("required", True)),
        float(limits.get("min", -math.inf)),
        float(limits.get("max", math.inf)),
        tuple(str(v) for v in limits.get("categories", ())),
    )


def _is_number(output: dict[str, Any]) -> bool:
    """Whether a signature's output is a number (a regressor's): a double column, or a float
    tensor (what `infer_signature` makes of a numpy array of predictions)."""
    if output.get("type") == "tensor":
        return str(output.get("tensor-spec", {}).get("dtype", "")).startswith("float")
    return output.get("type") in _NUMBER_OUTPUTS


def build(
    model: str,
    registered_name: str,
    version: str,
    mlmodel: str,
    constraints: dict[str, Any] | None = None,
    labels: dict[str, Any] | None = None,
) -> ModelSchema:
    """A version's schema from its MLmodel file and its optional JSON artifacts."""
    inputs, outputs = signature_of(mlmodel)
    features = (constraints or {}).get("features", {})
    columns = tuple(_column(spec, features) for spec in inputs)
    number = bool(outputs) and _is_number(outputs[0])
    return ModelSchema(
        model, registered_name, version, columns, "number" if number else "class",
        {str(k): str(v) for k, v in (labels or {}).items()},
    )  # fmt: skip


def seed_constraints() -> dict[str, Any]:
    """`feature_constraints.json` of the burn-out feature table (what `streamfn train` logs)."""
    features: dict[str, Any] = {}
    for f in FEATURES:
        features[f.name] = (
            {"categories": list(f.allowed)}
            if f.kind == "category"
            else {"min": f.low, "max": f.high}
        )
    return {"features": features}


def seed_labels() -> dict[str, str]:
    """`labels.json` of the burn-out classes: 0 Low, 1 Medium, 2 High."""
    return {str(i): label for i, label in enumerate(CLASS_LABELS)}


def seed_schema(
    model: str = "svm", registered_name: str = "SVC", version: str = "0"
) -> ModelSchema:
    """The schema of a seed model as `streamfn train` logs it: every feature optional, with the
    feature table's ranges and categories, and the burn-out labels."""
    columns = []
    for f in FEATURES:
        if f.kind == "category":
            columns.append(Column(f.name, "string", categories=f.allowed))
        else:
            columns.append(Column(f.name, "number", low=float(f.low), high=float(f.high)))
    return ModelSchema(model, registered_name, version, tuple(columns), "class", seed_labels())
