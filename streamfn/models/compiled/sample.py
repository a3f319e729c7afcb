"""The records a parity check runs on: a version's own sample, and edge records built from it.

The sample (a held-out split, a data file's rows, or draws from the reference profile) has the
nulls and categories the data has; the edge records add what the schema allows and the sample
may lack: each optional input missing in turn, several and all optional numbers missing,
nothing at all (when no input is required), every allowed category, numbers at the ends of their
range, and for a string column without a list of categories a value never seen in training.
Records are canonical dicts (None for missing), as the infer function receives them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamfn.models.columns import NUMERIC_KINDS
from streamfn.models.schemas import ModelSchema

SEED = 25
PER_CASE = 20  # sample rows each edge case is applied to
UNSEEN = "unseen in training"  # a string column without categories takes any string


def edge_records(schema: ModelSchema, sample: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records made from the sample's rows (seeded), one group per edge case the schema allows
    (a required input is never left out)."""
    rng = np.random.default_rng(SEED)

    def rows() -> list[dict[str, Any]]:
        picked = rng.choice(len(sample), size=min(PER_CASE, len(sample)), replace=False)
        return [dict(sample[int(i)]) for i in picked]

    optional = [c.name for c in schema.columns if c.kind in NUMERIC_KINDS and not c.required]
    out: list[dict[str, Any]] = []
    if not any(c.required for c in schema.columns):
        out.append({})  # nothing at all: everything imputed
    for column in schema.columns:
        if not column.required:
            out += [{**row, column.name: None} for row in rows()]
        if column.kind == "string":
            for value in column.categories or (UNSEEN,):
                out += [{**row, column.name: value} for row in rows()]
        elif column.kind in NUMERIC_KINDS:
            for bound in (column.low, column.high):
                if math.isfinite(bound):
                    out += [{**row, column.name: _typed(column.kind, bound)} for row in rows()]
    if optional:
        for row in rows():  # several numbers missing at once
            gone = rng.choice(optional, size=int(rng.integers(1, len(optional) + 1)), replace=False)
            out.append({**row, **dict.fromkeys((str(n) for n in gone), None)})
        out += [{**row, **dict.fromkeys(optional)} for row in rows()]  # every number missing
    return out


def _typed(kind: str, bound: float) -> float | int:
    return int(bound) if kind == "integer" else float(bound)


def summary(schema: ModelSchema, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the records hold: how many, the missing values per input, each category's count."""
    missing = {c.name: sum(r.get(c.name) is None for r in records) for c in schema.columns}
    categories = {
        c.name: dict(Counter(str(r[c.name]) for r in records if r.get(c.name) is not None))
        for c in schema.columns
        if c.kind == "string"
    }
    return {"records": len(records), "missing": missing, "categories": categories}


def records_of(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as canonical records: None for a missing cell, Python scalars."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: None if _missing(v) else _plain(v) for k, v in row.items()})
    return out


def _missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))  # NaN, None, pd.NA, NaT


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
