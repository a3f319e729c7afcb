"""`streamfn --help` and every command's: grouped commands, and each option with its help and
its default."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from streamfn.cli import GROUPS, build_parser


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name."""
    found = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices)


def shown(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The actions --help shows, in its order (positionals first, then options)."""
    visible = [a for a in parser._actions if a.help != argparse.SUPPRESS and a.dest != "help"]
    return [a for a in visible if not a.option_strings] + [a for a in visible if a.option_strings]


def entries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each shown option's text in --help, from its name to the next option's, without
    whitespace (argparse wraps lines, and breaks paths at hyphens)."""
    text = "".join(parser.format_help().split())
    formatter = parser._get_formatter()
    options = [a for a in shown(parser) if a.option_strings]
    starts, at = [], text.index("options:")
    for action in options:  # in order, each after the one before: helps name other options
        invocation = "".join(formatter._format_action_invocation(action).split())
        at = text.index(invocation, at)
        starts.append(at)
    ends = [*starts[1:], len(text)][: len(starts)]
    return {a.option_strings[0]: text[s:e] for a, s, e in zip(options, starts, ends, strict=True)}


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_says_what_it_does_and_its_default(name: str) -> None:
    parser = commands()[name]
    assert parser.description, f"{name} --help says nothing of what it does"
    for action in shown(parser):
        assert action.help, f"{name} {action.option_strings or action.dest}: no help"
    for option, entry in entries(parser).items():
        action = next(a for a in parser._actions if option in a.option_strings)
        if action.required or action.nargs == 0:  # a flag; or nothing to default
            continue
        if action.default is None:  # unset: the help says what happens then
            assert "default" in entry, f"{name} {option}: what without it? {entry!r}"
        else:
            assert f"(default:{action.default})" in entry, f"{name} {option}: {entry!r}"


def test_the_check_sees_an_option_without_its_default() -> None:
    parser = commands()["produce"]
    batch = next(a for a in parser._actions if "--batch" in a.option_strings)
    batch.help = "records per request (default: %(default)s)"
    assert "(default:100)" in entries(parser)["--batch"]
    batch.default = 7  # the help now shows 7, whatever a hand-written text would have said
    assert "(default:7)" in entries(parser)["--batch"]
    seed = next(a for a in parser._actions if "--seed" in a.option_strings)
    seed.help = "for the same records every run"
    assert "default" not in entries(parser)["--seed"]  # what the test above refuses


def test_help_lists_every_command_once_under_its_group(capsys: pytest.CaptureFixture) -> None:
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(commands())  # each in one group, none forgotten
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: streamfn [-h] [--version] COMMAND ...")
    for title, names in GROUPS.items():
        block = text[text.index(f"\n{title}:\n") + 1 :].split("\n\n")[0]
        assert [line.split()[0] for line in block.splitlines()[1:]] == list(names)
    assert "exit codes: 0 done" in text


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"streamfn {metadata.version('streamfn')}"
