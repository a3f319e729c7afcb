"""The formats a row object is written in: one module a format (see streamfn.core.plugins)."""
