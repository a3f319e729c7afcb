"""The web console at /ui: a page served by the ingest app, and the JSON it reads."""
