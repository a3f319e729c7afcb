"""Compiled inference, the writing side: a fitted scikit-learn pipeline as one ONNX graph, checked.

- `converters/`: what skl2onnx lacks for the pipelines streamfn trains (IterativeImputer, the
  string SimpleImputer, LightGBM trees in double, SVC in double, KNN with distance weights);
- `convert`: the whole pipeline to ONNX, one input per signature column;
- `sample`: the records the parity check runs on (a version's own plus edge records);
- `parity`: native against ONNX Runtime on those records, and both timed;
- `build`: the three together, giving `model.onnx` and `parity.json`.

Serving reads what this writes: `streamfn.models.runtimes`.
"""
