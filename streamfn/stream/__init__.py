"""The stream between ingest and the poller: its backends, partitions and batch events."""
