"""Hands streamfn's converters to skl2onnx, once per process."""

from __future__ import annotations

import lightgbm
from skl2onnx import update_registered_converter
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from skl2onnx.shape_calculators.support_vector_machines import calculate_sklearn_svm_output_shapes
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from streamfn.models.compiled.converters import imputers, neighbours, svc, trees

# zipmap=False gives a plain [N, classes] tensor like predict_proba, instead of a list of
# {class: probability} maps (slow to build, slow to read back).
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False]}
SVC_OPTIONS = {**CLASSIFIER_OPTIONS, "raw_scores": [True, False]}

_registered = False


def register() -> None:
    """Register IterativeImputer, the string SimpleImputer, LGBMClassifier (double trees), SVC
    (double) and KNeighborsClassifier with skl2onnx (the first call does it)."""
    global _registered
    if _registered:
        return
    update_registered_converter(IterativeImputer, "StreamfnIterativeImputer",
                                imputers.iterative_imputer_shape,
                                imputers.iterative_imputer_convert)  # fmt: skip
    update_registered_converter(SimpleImputer, "SklearnSimpleImputer",
                                calculate_sklearn_imputer_output_shapes,
                                imputers.simple_imputer_convert)  # fmt: skip
    update_registered_converter(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
                                calculate_linear_classifier_output_shapes,
                                trees.lightgbm_convert, options=CLASSIFIER_OPTIONS)  # fmt: skip
    update_registered_converter(SVC, "SklearnSVC", calculate_sklearn_svm_output_shapes,
                                svc.svc_convert,
                                options=SVC_OPTIONS)  # fmt: skip
    update_registered_converter(KNeighborsClassifier, "SklearnKNeighborsClassifier",
                                calculate_linear_classifier_output_shapes,
                                neighbours.knn_convert, options=CLASSIFIER_OPTIONS)  # fmt: skip
    _registered = True
