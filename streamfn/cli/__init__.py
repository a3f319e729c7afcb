"""The `streamfn` console script: one subcommand per stage of the pipeline.

Each module of this package adds the subcommands of one part: `serve` (ingest, infer, poll),
`data` (dataset, train, compile, profile), `produce`, `local` (up, buckets, results, monitor, bench,
bench-ceilings), `champion` (backtest, promote, rollback) and `canary`. `--help` lists them by what
a user does with them (GROUPS), whatever module holds them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import streamfn
from streamfn.cli.common import CommandError, Exit, console
from streamfn.core import logs
from streamfn.core.environment import ENV_FILE, adopt_env_file, get_settings
from streamfn.core.settings import ConfigError, Settings

GROUPS: dict[str, tuple[str, ...]] = {
    "run the pipeline": ("up", "ingest", "poll", "infer", "buckets"),
    "data": ("dataset", "produce"),
    "models": ("train", "compile", "profile", "backtest", "canary", "promote", "rollback"),
    "monitor": ("monitor", "results"),
    "bench": ("bench", "bench-ceilings"),
}
# Commands that start servers of their own (or need none): a running stack's variables in
# .streamfn/env are not theirs to take.
OWN_STACK = frozenset({"up", "bench", "bench-ceilings", "dataset"})
EXIT_CODES = (
    "exit codes: 0 done; 1 part of the work failed; 2 usage; 3 configuration; 4 refused "
    "(promote, rollback, a canary rolled back); 5 outage (Redis, MLflow, S3 or the ingest did "
    "not answer)"
)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (a flag's False and an unset None say nothing, so
    their help says what happens without them)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or not action.option_strings:
            return text
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser with the Formatter, for the command and every subcommand."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(**kwargs)


def grouped(helps: dict[str, str]) -> str:
    """The commands under their group's title, each with its one-line help."""
    width = max(map(len, helps)) + 2
    lines = []
    for title, names in GROUPS.items():
        lines += [f"{title}:", *(f"  {name.ljust(width)}{helps[name]}" for name in names), ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from streamfn.cli import canary, champion, data, local, produce, serve

    parser = Parser(
        prog="streamfn",
        usage="%(prog)s [-h] [--version] COMMAND ...",  # the commands are listed by group below
        description=streamfn.__doc__,
    )
    parser.add_argument("--version", action="version", version=f"streamfn {streamfn.__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser, prog="streamfn",
        help=argparse.SUPPRESS,  # listed by group below instead, in the epilog
    )  # fmt: skip
    for part in (data, produce, serve, local, champion, canary):
        part.register(commands)
    # argparse keeps a command's one-line help on a private list; it is read here only.
    helps = {choice.dest: choice.help or "" for choice in commands._choices_actions}
    for name, help_text in helps.items():
        commands.choices[name].description = help_text  # the first line of `COMMAND --help`
    parser.epilog = f"{grouped(helps)}\n{EXIT_CODES}.\n`streamfn COMMAND --help` shows its options."
    return parser


def adopt_stack_variables() -> None:
    """Take the variables `streamfn up` wrote to .streamfn/env that this shell does not set,
    and say so in one line."""
    adopted = adopt_env_file()
    if adopted:
        console.print(
            f"using {len(adopted)} variables from {ENV_FILE} (written by `streamfn up`) that "
            "this shell does not set",
            highlight=False,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; its exit codes are the Exit enum's."""
    args = build_parser().parse_args(argv)
    logs.configure(f"streamfn-{args.command}")
    if args.command not in OWN_STACK:
        adopt_stack_variables()
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, get_settings())
    except ConfigError as error:
        console.print(f"[bold red]error:[/] {error}")
        return Exit.CONFIG
    except CommandError as error:
        console.print(f"[bold red]error:[/] {error}")
        return error.code


if __name__ == "__main__":
    sys.exit(main())
