"""The native runtime: the version's own model on a DataFrame of the batch's columns.

A scikit-learn estimator is called directly (MLflow's schema enforcement would redo, at about
1 ms a call, what ingest's validation did) and gives classes and probabilities; any other flavour
goes through MLflow's pyfunc.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PyFuncModel

from streamfn.models.columns import Columns
from streamfn.models.runtimes.base import Outputs
from streamfn.models.schemas import ModelSchema

NAME = "native"


def first_output(found: Any) -> np.ndarray:
    """The predictions of a predict call: a pyfunc may answer a table or a dict of outputs (an
    ONNX model's label, then its probabilities), whose first is the prediction."""
    if isinstance(found, pd.DataFrame):
        found = found.iloc[:, 0]
    elif isinstance(found, dict):
        found = next(iter(found.values()))
    return np.asarray(found)


def one_per_row(found: np.ndarray, rows: int, output: str) -> np.ndarray:
    """One prediction a row. A classifier's matrix of scores per class (a native Booster's
    probabilities, through MLflow's pyfunc) gives each row its most likely class; any other
    shape is refused, never spread over the wrong rows."""
    if found.ndim == 2 and found.shape[1] == 1:
        found = found[:, 0]
    if found.ndim == 2 and output == "class" and found.shape[0] == rows:
        return found.argmax(axis=1)
    if found.ndim != 1 or len(found) != rows:
        raise ValueError(
            f"the model answered an array of shape {found.shape} for {rows} rows: "
            "streamfn serves one prediction per row (or a classifier's scores per class)"
        )
    return found


class NativeRuntime:
    """The estimator (else the pyfunc model) on a frame in signature order."""

    name = NAME

    def __init__(self, schema: ModelSchema, model: PyFuncModel | None, estimator: Any) -> None:
        self.names = list(schema.names)
        self.output = schema.output
        self.predictor = estimator if estimator is not None else model
        self.estimator = estimator

    def one_per_row(self, found: Any, frame: pd.DataFrame) -> np.ndarray:
        """A predict call's answer as one prediction per row of the frame (one_per_row)."""
        return one_per_row(first_output(found), len(frame), self.output)

    def frame(self, columns: Columns) -> pd.DataFrame:
        """The columns as the model's input frame (a frame is taken as it is)."""
        if isinstance(columns, pd.DataFrame):
            return columns
        return pd.DataFrame(columns, columns=self.names)

    def run(self, columns: Columns, probabilities: bool) -> Outputs:
        """predict, and predict_proba when asked. A pipeline's preprocessing then runs once,
        its output handed to both of the final model's calls (it costs as much as the model)."""
        frame = self.frame(columns)
        if not probabilities:
            return Outputs(self.one_per_row(self.predictor.predict(frame), frame))
        steps = getattr(self.estimator, "steps", None)
        final, inputs = self.estimator, frame
        if steps and len(steps) > 1:
            final, inputs = steps[-1][1], self.estimator[:-1].transform(frame)
        values = self.one_per_row(final.predict(inputs), frame)
        return Outputs(values, np.asarray(final.predict_proba(inputs), dtype=np.float64))
