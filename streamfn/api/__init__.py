"""What every route of the app shares: its dependencies, its answers and refusals, the key check
and the `model` query."""
