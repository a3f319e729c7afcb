"""Model runtimes: how a loaded version turns a batch's columns into predictions.

- `base`: what a runtime is (`Runtime`, `Outputs`);
- `native`: the version's own model (the scikit-learn estimator, or MLflow's pyfunc);
- `onnx`: ONNX Runtime on the version's compiled `model.onnx`, or on a model logged as ONNX;
- `choice`: which of the two serves a version, and why (pure Python: the ingest asks it too);
- `loading`: the chosen runtime built for a downloaded version, native when the graph fails.

Names are in `streamfn.core.plugins.RUNTIMES`; PREDICT_RUNTIME picks (docs/models.md).
"""
