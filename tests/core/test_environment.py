"""A command's variables from `.streamfn/env` where its environment lacks them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamfn.core.environment import adopt_env_file, get_settings


@pytest.fixture
def environ() -> Iterator[None]:
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)
    get_settings.cache_clear()


@pytest.mark.usefixtures("environ")
def test_the_file_fills_in_what_the_environment_lacks_and_settings_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAX_RECORDS", raising=False)
    monkeypatch.setenv("STREAM_KEY", "mine")
    env = tmp_path / "env"
    env.write_text(
        "MAX_RECORDS=7\nSTREAM_KEY=theirs\n\n# a comment=1\nINGEST_URL=http://h:1/?a=b\n"
    )
    assert get_settings().MAX_RECORDS != 7  # read (and kept) before the file
    assert adopt_env_file(env) == ["MAX_RECORDS", "INGEST_URL"]
    assert os.environ["STREAM_KEY"] == "mine"  # the shell's own value wins
    assert os.environ["INGEST_URL"] == "http://h:1/?a=b"  # split at the first "=" only
    settings = get_settings()
    assert (settings.MAX_RECORDS, settings.STREAM_KEY) == (7, "mine")


def test_no_file_changes_nothing(tmp_path: Path) -> None:
    before = dict(os.environ)
    assert adopt_env_file(tmp_path / "absent") == []
    assert dict(os.environ) == before
