"""Converters skl2onnx lacks (or gets wrong) for streamfn's pipelines, registered once.

One module per estimator family; `registry.register()` hands them all to skl2onnx.
"""
