"""What a runtime is: a loaded version's way from a batch's columns to its predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamfn.models.columns import Columns


@dataclass(frozen=True)
class Outputs:
    """One call's outputs: a prediction per row (raw: numpy classes or numbers), and the class
    probabilities when they were asked for ([rows, classes], the estimator's class order)."""

    values: np.ndarray
    probabilities: np.ndarray | None = None


class Runtime(Protocol):
    """Predicts whole batches of column arrays (streamfn.models.columns)."""

    @property
    def name(self) -> str:
        """Its name in streamfn.core.plugins.RUNTIMES (the object metadata rows carry)."""
        ...

    def run(self, columns: Columns, probabilities: bool) -> Outputs:
        """Predictions of every row, in one call (and the probabilities, if asked)."""
        ...
