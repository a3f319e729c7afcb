"""What every subcommand shares: the console, the error a command stops with, the MLflow check."""

from __future__ import annotations

import argparse

import httpx
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # messages stay whole, for copy and paste

# The `commands` object argparse gives add_subparsers; its type is private.
Commands = argparse._SubParsersAction


class CommandError(RuntimeError):
    """A command cannot go on; the message says what to do."""


def check_mlflow(uri: str) -> None:
    """Fail fast, with the fix, when an MLflow server URI does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        raise CommandError(
            f"MLflow is not reachable at MLFLOW_TRACKING_URI={uri} ({error}). Start a server "
            "(`streamfn up` does) or point MLFLOW_TRACKING_URI at a SQLite store, "
            "e.g. sqlite:///mlflow.db"
        ) from None
