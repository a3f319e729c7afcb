"""The ingest API key read from an SSM SecureString (moto's in-process SSM)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streamfn.core.api_key import resolve_api_key
from streamfn.core.environment import get_settings
from streamfn.core.settings import ConfigError, Settings, load_settings

PARAMETER = "/streamfn/ingest-api-key"


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's SSM, fake credentials, and no streamfn variable from the developer's environment."""
    from moto import mock_aws

    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SSM", raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with mock_aws():
        import boto3

        yield boto3.client("ssm", region_name="us-east-1")
    get_settings.cache_clear()


def test_the_key_is_read_from_the_secure_string(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value="s3cret", Type="SecureString")
    settings = resolve_api_key(load_settings(INGEST_API_KEY_PARAMETER=PARAMETER))
    assert settings.INGEST_API_KEY is not None
    assert settings.INGEST_API_KEY.get_secret_value() == "s3cret"
    assert settings.INGEST_API_KEY_PARAMETER == PARAMETER


def test_get_settings_resolves_the_parameter_once(
    ssm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm.put_parameter(Name=PARAMETER, Value="first", Type="SecureString")
    monkeypatch.setenv("INGEST_API_KEY_PARAMETER", PARAMETER)
    settings = get_settings()
    assert settings.INGEST_API_KEY is not None
    assert settings.INGEST_API_KEY.get_secret_value() == "first"
    # Read at start only: a rotated key needs a new process (a new Lambda environment).
    ssm.put_parameter(Name=PARAMETER, Value="second", Type="SecureString", Overwrite=True)
    assert get_settings() is settings


def test_a_missing_parameter_fails_naming_it(ssm: Any) -> None:
    settings = load_settings(INGEST_API_KEY_PARAMETER="/streamfn/missing")
    with pytest.raises(ConfigError, match="INGEST_API_KEY_PARAMETER='/streamfn/missing'") as error:
        resolve_api_key(settings)
    assert "ParameterNotFound" in str(error.value)


def test_a_plain_string_parameter_is_refused(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value="visible", Type="String")
    with pytest.raises(ConfigError, match="is a String: store the key as a SecureString"):
        resolve_api_key(load_settings(INGEST_API_KEY_PARAMETER=PARAMETER))


def test_a_key_given_outright_wins_without_asking_ssm(ssm: Any) -> None:
    # The parameter does not exist: asking SSM would raise ConfigError.
    settings = load_settings(INGEST_API_KEY="direct", INGEST_API_KEY_PARAMETER="/streamfn/missing")
    resolved = resolve_api_key(settings)
    assert resolved is settings
    assert resolved.INGEST_API_KEY is not None
    assert resolved.INGEST_API_KEY.get_secret_value() == "direct"


def test_an_empty_parameter_name_means_no_key(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # SAM passes the template's empty default as "": no parameter, no key, no SSM call.
    monkeypatch.setenv("INGEST_API_KEY_PARAMETER", "")
    settings = get_settings()
    assert settings.INGEST_API_KEY_PARAMETER is None
    assert settings.INGEST_API_KEY is None


def test_the_feedback_key_is_read_from_its_own_secure_string(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value="ingest", Type="SecureString")
    ssm.put_parameter(Name="/streamfn/feedback-api-key", Value="labels", Type="SecureString")
    settings = resolve_api_key(load_settings(
        INGEST_API_KEY_PARAMETER=PARAMETER, FEEDBACK_API_KEY_PARAMETER="/streamfn/feedback-api-key"
    ))  # fmt: skip
    assert settings.INGEST_API_KEY is not None
    assert settings.FEEDBACK_API_KEY is not None
    assert settings.INGEST_API_KEY.get_secret_value() == "ingest"
    assert settings.FEEDBACK_API_KEY.get_secret_value() == "labels"
    with pytest.raises(ConfigError, match="FEEDBACK_API_KEY_PARAMETER='/streamfn/gone'"):
        resolve_api_key(load_settings(FEEDBACK_API_KEY_PARAMETER="/streamfn/gone"))
