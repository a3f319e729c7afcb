"""The settings of this process: read from its environment once, the API keys fetched from SSM
Parameter Store when so configured (so no secret sits in a function's environment)."""

from __future__ import annotations

from functools import lru_cache

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
