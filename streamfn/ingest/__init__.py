"""The ingest function: validation at the door, the HTTP routes, one append per request."""
