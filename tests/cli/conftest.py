"""What the CLI's tests share: an environment put back as it was, and a port nothing listens on."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streamfn.core.environment import get_settings
from streamfn.local.stack import free_port


@pytest.fixture
def environ() -> Iterator[None]:
    """os.environ restored after the test, whatever the command set in it (.streamfn/env's
    variables go into the environment itself, where monkeypatch does not see them)."""
    before = dict(os.environ)
    get_settings.cache_clear()
    yield
    os.environ.clear()
    os.environ.update(before)
    get_settings.cache_clear()


@pytest.fixture
def closed_url() -> str:
    """An HTTP address on a free port: a service that is down."""
    return f"http://127.0.0.1:{free_port()}"
