"""What every stage shares: settings, Redis keys and clients, ids, clocks, logs, metrics."""
