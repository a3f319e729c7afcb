"""One number of windows shown by default: GET /monitoring, `streamfn monitor` and the console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import streamfn.console
from streamfn.app import create_app
from streamfn.cli import build_parser
from streamfn.core.settings import Settings
from streamfn.monitor import WINDOWS_SHOWN


def test_get_monitoring_and_streamfn_monitor_show_the_same_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    document = create_app(Settings()).openapi()
    parameters = document["paths"]["/monitoring"]["get"]["parameters"]
    [windows] = [p for p in parameters if p["name"] == "windows"]
    assert windows["schema"]["default"] == WINDOWS_SHOWN
    assert build_parser().parse_args(["monitor"]).windows == WINDOWS_SHOWN


def test_the_console_asks_for_as_many() -> None:
    script = (Path(streamfn.console.__file__).parent / "static" / "console.js").read_text()
    assert int(re.search(r"const WINDOWS = (\d+);", script)[1]) == WINDOWS_SHOWN
