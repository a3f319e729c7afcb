"""Model monitoring on the stream: counts per window, drift against the reference, live accuracy."""
