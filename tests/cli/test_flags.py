"""One name per idea across the commands, the old spellings still taken for one release, and
the options that exclude each other."""

from __future__ import annotations

import argparse

import pytest

from streamfn.cli import build_parser, champion
from streamfn.core.settings import load_settings
from streamfn.models import registry
from tests.cli.test_help import commands, shown

# Folders that are not a command's output: up's home (its servers' data, read again next time)
# and MLServer's virtualenv.
OTHER_FOLDERS = ("--home", "--mlserver-venv")
RENAMED = [  # command, old spelling, new one, a value
    ("poll", "--partitions", "--only-partitions", "0-2"),
    ("bench", "--registry", "--tracking-uri", "sqlite:///bench.db"),
    ("bench-ceilings", "--registry", "--tracking-uri", "sqlite:///bench.db"),
    ("results", "--download", "--out", "objects"),
]


@pytest.mark.parametrize(("command", "old", "new", "value"), RENAMED)
def test_an_old_spelling_still_works_says_the_new_one_and_is_not_shown(
    command: str, old: str, new: str, value: str, capsys: pytest.CaptureFixture
) -> None:
    parser = build_parser()
    as_new = parser.parse_args([command, new, value])
    assert capsys.readouterr().err == ""
    assert parser.parse_args([command, old, value]) == as_new
    assert f"{old} is now {new}" in capsys.readouterr().err
    changed = next(k for k, v in vars(as_new).items() if v != vars(parser.parse_args([command]))[k])
    assert vars(parser.parse_args([command]))[changed] is None  # the hidden one sets no default
    visible = {o for a in shown(commands()[command]) for o in a.option_strings}
    assert new in visible
    assert old not in visible


def test_one_name_per_idea() -> None:
    for name, parser in commands().items():
        for action in shown(parser):
            if action.dest == "tracking_uri":  # the MLflow URI
                assert action.option_strings == ["--tracking-uri"], name
            if action.metavar == "DIR":  # a folder: the one a command writes to is --out
                assert action.option_strings[0] in ("--out", *OTHER_FOLDERS), name
            if "--partitions" in action.option_strings:  # a count; a choice is --only-partitions
                assert action.type is int, name
            assert not {"--registry", "--download"} & set(action.option_strings), name


def test_backtest_takes_a_window_or_a_day_not_both(capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    assert parser.parse_args(["backtest", "--model", "svm"]).since == 24.0  # "24h"
    assert parser.parse_args(["backtest", "--model", "svm", "--since", "2d"]).since == 48.0
    day = parser.parse_args(["backtest", "--model", "svm", "--date", "2026-11-26"])
    assert str(day.date) == "2026-11-26"
    with pytest.raises(SystemExit) as both:
        parser.parse_args(["backtest", "--model", "svm", "--since", "2d", "--date", "2026-11-26"])
    assert both.value.code == 2
    assert "not allowed with argument --since" in capsys.readouterr().err


def test_backtest_scores_the_version_challenger_alias_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Aliases:
        def alias_target(self, name: str, alias: str) -> str | None:
            return {"trial": "7", "challenger": "3"}.get(alias)

    monkeypatch.setattr(registry, "open_registry", lambda uri: Aliases())
    settings = load_settings(CHALLENGER_ALIAS="trial")
    chosen = build_parser().parse_args(["backtest", "--model", "svm"])
    assert champion.candidate_version(settings, "SVC", chosen) == "7"
    named = argparse.Namespace(version=None, alias="challenger")
    assert champion.candidate_version(settings, "SVC", named) == "3"
