"""The poller: batches from the stream to the infer function, acknowledged once written."""
