"""A model version loaded in memory: what predicts its batches (its runtime), its classes, its
calibration and its explainer, and the errors that say why a model cannot be served."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PyFuncModel

from streamfn.models import calibration, explain
from streamfn.models.columns import Columns, column_arrays, size
from streamfn.models.runtimes.base import Outputs, Runtime
from streamfn.models.runtimes.choice import Choice
from streamfn.models.runtimes.native import NativeRuntime
from streamfn.models.schemas import ModelSchema

log = logging.getLogger(__name__)

NOT_CHOSEN = Choice("native", "loaded without a runtime choice")


class ModelUnavailableError(RuntimeError):
    """No version of the model could be resolved or loaded (and none is cached)."""


class ModelRefusedError(ModelUnavailableError):
    """The version cannot be served as it is (no signature, inputs of another kind): retrying
    the messages will not help, so they fail alone."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded in memory, predicting whole batches."""

    schema: ModelSchema
    model: PyFuncModel = field(repr=False, compare=False)
    # The scikit-learn estimator behind a sklearn-flavoured model: the native runtime calls it
    # directly, it gives the classes and says whether there are probabilities, and it stays here
    # whatever runtime serves (explanations come from the native model).
    estimator: Any = field(default=None, repr=False, compare=False)
    # The version's reference profile (`reference_profile.json`), None when it has none.
    profile: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # What predicts, and why that one (streamfn.models.runtimes): native unless told otherwise.
    runtime: Runtime = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    choice: Choice = NOT_CHOSEN
    # The version's calibration (`calibration.json`, streamfn.models.calibration): a window's
    # performance is estimated from it; None when it has none.
    calibration: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.runtime is None:
            object.__setattr__(self, "runtime", NativeRuntime(self.schema, self.model,
                                                              self.estimator))  # fmt: skip

    @property
    def api_name(self) -> str:
        """The model's API name."""
        return self.schema.model

    @property
    def registered_name(self) -> str:
        """The model's name in the registry."""
        return self.schema.registered_name

    @property
    def version(self) -> str:
        """The version loaded."""
        return self.schema.version

    @property
    def runtime_name(self) -> str:
        """The runtime serving it: native or onnx (what its rows' objects say)."""
        return self.runtime.name

    @property
    def classes(self) -> list[Any]:
        """The classifier's classes, in the order of its probabilities ([] if unknown)."""
        found = getattr(self.estimator, "classes_", None)
        return [] if found is None else list(found)

    @property
    def has_probabilities(self) -> bool:
        """Whether the model gives class probabilities."""
        return self.schema.output == "class" and hasattr(self.estimator, "predict_proba")

    def columns(self, records: Sequence[Mapping[str, object]]) -> dict[str, np.ndarray]:
        """The records as the model's input columns (streamfn.models.columns)."""
        return columns_of(self.schema, records)

    def frame(self, records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
        """The records as the native model's input frame."""
        return frame_of(self.schema, records)

    def outputs(self, columns: Columns, probabilities: bool) -> tuple[list[Any], np.ndarray]:
        """One prediction per row (a class, or a regressor's number) and, when asked, the class
        probabilities (columns in `classes` order; empty when not asked), in one runtime call."""
        if size(columns) == 0:
            return [], np.empty((0, len(self.classes)))
        found: Outputs = self.runtime.run(columns, probabilities)
        values = found.values
        if self.schema.output == "number":
            predictions = values.astype(np.float64).tolist()
        else:
            predictions = values.tolist()  # numpy ints and strings become Python ones
        shares = found.probabilities if found.probabilities is not None else np.empty((0, 0))
        return predictions, shares

    def predict(self, columns: Columns) -> list[Any]:
        """One prediction per row of columns (or of a frame of them), in one call."""
        return self.outputs(columns, probabilities=False)[0]

    def probabilities(self, columns: Columns) -> np.ndarray:
        """Each row's probability per class (columns in `classes` order)."""
        return self.outputs(columns, probabilities=True)[1]

    @property
    def calibrates_probabilities(self) -> bool:
        """Whether its calibration reads the runtime's probabilities (else the estimator's own
        decision function, or there is none)."""
        return self.calibration is not None and self.calibration["source"] == "predict_proba"

    def calibrated(self, columns: Columns, probabilities: np.ndarray | None) -> np.ndarray:
        """Each row's calibrated probability per class (`classes` order): from the runtime's
        probabilities when given, else from the native estimator's scores."""
        if self.calibration is None:
            raise ValueError(f"{self.registered_name} v{self.version} has no calibration")
        frame = None if probabilities is not None else pd.DataFrame(columns)
        return calibration.calibrated(self.calibration, self.estimator, frame, probabilities)

    @cached_property
    def explainer(self) -> explain.Explainer | None:
        """Its exact attribution (from the native model, whatever runtime predicts), or None,
        said once in the log with the reason."""
        try:
            return explain.explainer_of(self.estimator, self.schema.names)
        except explain.NotExplainableError as error:
            log.warning("no reason codes for this version",
                        extra={"model": self.api_name, "version": self.version,
                               "error": str(error)})  # fmt: skip
            return None


def columns_of(
    schema: ModelSchema, records: Sequence[Mapping[str, object]]
) -> dict[str, np.ndarray]:
    """The schema's columns (in signature order) of canonical records; absent values missing."""
    return column_arrays([(c.name, c.kind) for c in schema.columns], records)


def frame_of(schema: ModelSchema, records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """The schema's columns (in signature order) of canonical records; absent values are NaN."""
    # Column by column: 1.7 times faster than a frame of rows converted afterwards
    # (benchmarks/bench_infer.py).
    return pd.DataFrame(columns_of(schema, records), columns=list(schema.names))
