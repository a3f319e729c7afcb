"""The infer function: warm models, predictions per batch, rows written once to the bucket."""
