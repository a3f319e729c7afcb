"""The settings of this process: read from its environment once, the API keys fetched from SSM
Parameter Store when so configured (so no secret sits in a function's environment); for a
command, the variables `streamfn up` left in `.streamfn/env` where the environment lacks them."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from streamfn.core.settings import Settings, load_settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    settings = load_settings()
    if settings.INGEST_API_KEY_PARAMETER is None and settings.FEEDBACK_API_KEY_PARAMETER is None:
        return settings
    # Imported here: boto3 is needed only then (the ingest's zip function does not ship it).
    from streamfn.core.api_key import resolve_api_key

    return resolve_api_key(settings)


# Written by `streamfn up` under its default home, in the folder it was started from.
ENV_FILE = Path(".streamfn") / "env"


def adopt_env_file(path: Path = ENV_FILE) -> list[str]:
    """Set the variables of an env file (NAME=value lines) that the environment lacks, as
    `set -a; . FILE; set +a` would without overriding; the names set ([] without a file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    adopted = []
    for line in text.splitlines():
        name, equals, value = line.strip().partition("=")
        if not equals or name.startswith("#") or name in os.environ:
            continue
        # Into the environment itself, not only Settings: boto3, MLflow and the children a
        # command starts read these names too.
        os.environ[name] = value
        adopted.append(name)
    if adopted:
        get_settings.cache_clear()  # read again, with them
    return adopted
