"""The API keys from SSM Parameter Store: fetched once at start, never kept in the env."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from streamfn.core.aws import aws_session
from streamfn.core.settings import ConfigError, Settings

SECURE_STRING = "SecureString"
# Each key, and the variable naming the SecureString that holds it.
PARAMETERS = {"INGEST_API_KEY": "INGEST_API_KEY_PARAMETER",
              "FEEDBACK_API_KEY": "FEEDBACK_API_KEY_PARAMETER"}  # fmt: skip


def resolve_api_key(settings: Settings) -> Settings:
    """Settings whose keys are the SecureStrings their *_PARAMETER variables name.

    A key given outright wins, and SSM is not asked for it. The endpoint is boto3's own
    (AWS_ENDPOINT_URL_SSM, when set, points it elsewhere).
    """
    wanted = {}
    for key, variable in PARAMETERS.items():
        name = getattr(settings, variable)
        if name is not None and getattr(settings, key) is None:
            wanted[key] = name
    if not wanted:
        return settings
    client = aws_session(settings).client("ssm")
    found = {key: SecretStr(_read(client, PARAMETERS[key], name)) for key, name in wanted.items()}
    return settings.model_copy(update=found)


def _read(client: object, variable: str, name: str) -> str:
    """One SecureString's value; ConfigError naming the variable when it cannot be read."""
    try:
        parameter = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]  # type: ignore[attr-defined]
    except ClientError as error:
        detail = error.response.get("Error", {})
        reason = f"{detail.get('Code', 'error')}: {detail.get('Message', error)}"
        raise ConfigError(_unreadable(variable, name, reason)) from None
    except BotoCoreError as error:  # no credentials, no route to SSM
        raise ConfigError(_unreadable(variable, name, str(error))) from None
    # A plain String is readable by anyone who may describe parameters: refuse it loudly.
    if parameter["Type"] != SECURE_STRING:
        raise ConfigError(
            f"{variable}={name!r} is a {parameter['Type']}: store the key as a {SECURE_STRING}"
        )
    return str(parameter["Value"])


def _unreadable(variable: str, name: str, reason: str) -> str:
    return f"{variable}={name!r}: cannot read the SSM parameter ({reason})"
