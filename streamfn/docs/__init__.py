"""The documentation's tools: the check that every figure has a source, and the site's hooks."""
