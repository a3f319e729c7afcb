"""The seed's models and their feature table (the burn-out data): names, types, allowed values,
and the target's classes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from streamfn.core.settings import SEED_MODELS

EMPLOYEE_ID = "Employee ID"
TARGET = "Burn Rate"
CLASS_LABELS: tuple[str, ...] = ("Low", "Medium", "High")
# Upper bounds (exclusive) of the Low and Medium classes of Burn Rate.
CLASS_EDGES: tuple[float, float] = (0.33, 0.66)


@dataclass(frozen=True, slots=True)
class Feature:
    """One model input: a category with allowed values, or a number within [low, high]."""

    name: str
    kind: Literal["category", "number"]
    allowed: tuple[str, ...] = ()
    low: float = -math.inf
    high: float = math.inf


FEATURES: tuple[Feature, ...] = (
    Feature("Gender", "category", allowed=("Male", "Female")),
    Feature("Company Type", "category", allowed=("Service", "Product")),
    Feature("WFH Setup Available", "category", allowed=("Yes", "No")),
    Feature("Designation", "number", low=0, high=5),
    Feature("Resource Allocation", "number", low=1, high=10),
    Feature("Mental Fatigue Score", "number", low=0, high=10),
    Feature("Work Hours per Week", "number", low=0, high=120),
    Feature("Sleep Hours", "number", low=0, high=24),
    Feature("Work-Life Balance Score", "number", low=1, high=5),
    Feature("Manager Support Score", "number", low=1, high=5),
    Feature("Deadline Pressure Score", "number", low=1, high=5),
    Feature("Team Size", "number", low=1, high=1000),
    Feature("Recognition Frequency", "number", low=0, high=5),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "category")
NUMERIC: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "number")
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

_SEPARATORS = re.compile(r"[\s_\-]+")


def key_form(key: str) -> str:
    """Fold a field name so that case, spaces, underscores and hyphens do not matter."""
    return _SEPARATORS.sub(" ", key.strip()).lower()


# Every accepted spelling, folded, mapped to its canonical name.
CANONICAL_KEYS: dict[str, str] = {key_form(n): n for n in (*FEATURE_NAMES, EMPLOYEE_ID)}


def burn_class(rate: float) -> int:
    """Bin a Burn Rate into its class: Low 0, Medium 1, High 2."""
    if rate < CLASS_EDGES[0]:
        return 0
    return 1 if rate < CLASS_EDGES[1] else 2


def is_seed_model(api_name: str, registered_name: str) -> bool:
    """Whether MODELS maps this API name to the seed's model of that name."""
    return SEED_MODELS.get(api_name) == registered_name
