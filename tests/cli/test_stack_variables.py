"""Commands in another shell reach `streamfn up`'s stack through its .streamfn/env, and say so;
commands that start servers of their own leave that file alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamfn.cli import main
from streamfn.cli.common import Exit

pytestmark = pytest.mark.usefixtures("environ")


def stack_file(folder: Path, text: str) -> None:
    (folder / ".streamfn").mkdir()
    (folder / ".streamfn" / "env").write_text(text)


def test_a_command_takes_the_stack_variables_it_lacks_and_says_so(
    tmp_path: Path, closed_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.delenv("INGEST_URL", raising=False)
    monkeypatch.delenv("DRIFT_PSI", raising=False)
    monkeypatch.setenv("MONITOR_WINDOW_S", "60")
    stack_file(tmp_path, f"INGEST_URL={closed_url}\nDRIFT_PSI=0.3\nMONITOR_WINDOW_S=5\n")
    monkeypatch.chdir(tmp_path)
    assert main(["monitor"]) == Exit.OUTAGE  # it went where the file says, and found nothing
    said = capsys.readouterr().err
    assert said.startswith(
        "using 2 variables from .streamfn/env (written by `streamfn up`) that this shell does "
        "not set\n"
    )
    assert f"INGEST_URL={closed_url} does not answer" in said
    assert os.environ["MONITOR_WINDOW_S"] == "60"


def test_a_shell_that_sets_them_all_hears_nothing_of_the_file(
    tmp_path: Path, closed_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("INGEST_URL", closed_url)
    stack_file(tmp_path, "INGEST_URL=http://elsewhere:1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["monitor"]) == Exit.OUTAGE
    said = capsys.readouterr().err
    assert ".streamfn/env" in said  # where to look, in the outage's message
    assert "using" not in said
    assert closed_url in said


def test_a_command_with_servers_of_its_own_does_not_read_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAX_RECORDS", raising=False)
    stack_file(tmp_path, "MAX_RECORDS=lots\n")  # read, it would stop the command (exit 3)
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "--out", str(tmp_path / "data.csv"), "--seed", "3"]) == Exit.OK
    assert "MAX_RECORDS" not in os.environ
    assert (tmp_path / "data.csv").stat().st_size > 0
