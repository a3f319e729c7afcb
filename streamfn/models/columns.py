"""A batch's inputs as column arrays: what every runtime predicts from and monitoring counts.

Built once per batch straight from the validated records, one 1-D numpy array per input of the
schema, in signature order: numbers as float64 (a missing value is NaN), integers as int64 (as
float64 with NaN when one is missing), anything else as an object array whose missing values are
NaN (imputers count only NaN as missing: a None would reach a one-hot encoder as an unknown
category). The native runtime wraps them in a DataFrame, the ONNX runtime reshapes them into its
feed, the monitoring counts read them as they are; a challenger scores the champion's columns
whatever runtime either serves with. A pandas DataFrame of the same columns is accepted wherever
columns are (`frame[name]` is a column too), which is how a backtest passes the rows it read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# One array (or pandas Series) per input name.
Columns = Mapping[str, Any]
NUMERIC_KINDS = frozenset({"number", "integer"})


def column_arrays(
    names_and_kinds: Sequence[tuple[str, str]], records: Sequence[Mapping[str, object]]
) -> dict[str, np.ndarray]:
    """One array per (name, kind), in that order, from canonical records (absent = missing)."""
    columns: dict[str, np.ndarray] = {}
    for name, kind in names_and_kinds:
        values = [record.get(name) for record in records]
        if kind == "number" or (kind == "integer" and None in values):
            # float64, as a double signature says; numpy reads None as NaN.
            columns[name] = np.array(values, dtype=np.float64)
        elif kind == "integer":
            columns[name] = np.array(values, dtype=np.int64)
        else:
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=object)
    return columns


def column(columns: Columns, name: str) -> np.ndarray:
    """One input's values as a 1-D numpy array (from a dict of arrays or a DataFrame)."""
    return np.asarray(columns[name])


def size(columns: Columns) -> int:
    """The number of rows (0 for no columns)."""
    first = next(iter(columns), None)  # a dict and a DataFrame both iterate over their names
    return 0 if first is None else len(columns[first])


def take(columns: Mapping[str, np.ndarray], start: int, end: int) -> dict[str, np.ndarray]:
    """Rows start..end of every column (views, not copies)."""
    return {name: values[start:end] for name, values in columns.items()}


def join(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The rows of several batches of the same columns, one after the other."""
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
