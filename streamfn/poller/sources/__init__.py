"""Where a poller reads its batches from; each source turns its entries into a batch event."""
