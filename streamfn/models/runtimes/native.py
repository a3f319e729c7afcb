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
    return np.asarray(found).ravel()


class NativeRuntime:
    """The estimator (else the pyfunc model) on a frame in signature order."""

    name = NAME

    def __init__(self, schema: ModelSchema, model: PyFuncModel | None, estimator: Any) -> None:
        self.names = list(schema.names)
        self.predictor = estimator if estimator is not None else model
        self.estimator = estimator

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
            return Outputs(first_output(self.predictor.predict(frame)))
        steps = getattr(self.estimator, "steps", None)
        final, inputs = self.estimator, frame
        if steps and len(steps) > 1:
            final, inputs = steps[-1][1], self.estimator[:-1].transform(frame)
        values = first_output(final.predict(inputs))
        return Outputs(values, np.asarray(final.predict_proba(inputs), dtype=np.float64))
