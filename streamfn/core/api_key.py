"""The ingest API key from SSM Parameter Store: fetched once at start, never kept in the env."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from streamfn.core.aws import aws_session
from streamfn.core.settings import ConfigError, Settings

SECURE_STRING = "SecureString"


def resolve_api_key(settings: Settings) -> Settings:
    """Settings whose INGEST_API_KEY is the SecureString INGEST_API_KEY_PARAMETER names.

    An INGEST_API_KEY given outright wins, and SSM is not asked. The endpoint is boto3's own
    (AWS_ENDPOINT_URL_SSM, when set, points it elsewhere).
    """
    name = settings.INGEST_API_KEY_PARAMETER
    if name is None or settings.INGEST_API_KEY is not None:
        return settings
    client = aws_session(settings).client("ssm")
    try:
        parameter = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except ClientError as error:
        detail = error.response.get("Error", {})
        reason = f"{detail.get('Code', 'error')}: {detail.get('Message', error)}"
        raise ConfigError(_unreadable(name, reason)) from None
    except BotoCoreError as error:  # no credentials, no route to SSM
        raise ConfigError(_unreadable(name, str(error))) from None
    # A plain String is readable by anyone who may describe parameters: refuse it loudly.
    if parameter["Type"] != SECURE_STRING:
        raise ConfigError(
            f"INGEST_API_KEY_PARAMETER={name!r} is a {parameter['Type']}: store the key as a "
            f"{SECURE_STRING}"
        )
    return settings.model_copy(update={"INGEST_API_KEY": SecretStr(parameter["Value"])})


def _unreadable(name: str, reason: str) -> str:
    return f"INGEST_API_KEY_PARAMETER={name!r}: cannot read the SSM parameter ({reason})"
