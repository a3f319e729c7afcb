"""boto3 sessions built from the settings, shared by the S3 sink and the Lambda invoker."""

from __future__ import annotations

import boto3
from botocore.credentials import EnvProvider

from streamfn.core.settings import Settings


def credentials(settings: Settings) -> dict[str, str | None]:
    """Explicit credentials from settings, keeping the session token when they are the env's."""
    if settings.AWS_ACCESS_KEY_ID is None or settings.AWS_SECRET_ACCESS_KEY is None:
        return {}  # boto3's own chain: profile, container or instance role
    env = EnvProvider().load()
    # On Lambda the key in the environment is temporary: it is useless without its token.
    token = env.token if env is not None and env.access_key == settings.AWS_ACCESS_KEY_ID else None
    return {
        "aws_access_key_id": settings.AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": settings.AWS_SECRET_ACCESS_KEY.get_secret_value(),
        "aws_session_token": token,
    }


def aws_session(settings: Settings) -> boto3.session.Session:
    """A session in AWS_DEFAULT_REGION with the settings' credentials (else boto3's own chain)."""
    return boto3.session.Session(region_name=settings.AWS_DEFAULT_REGION, **credentials(settings))
