"""The `streamfn` console script: one subcommand per stage of the pipeline.

Each module of this package adds the subcommands of one part: `serve` (ingest, poll), `data`
(dataset, train, compile, profile, produce), `local` (up, buckets, results, bench) and
`champion` (backtest, promote, rollback) and `canary`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from streamfn.cli.common import CommandError, console
from streamfn.core import logs
from streamfn.core.environment import get_settings
from streamfn.core.settings import ConfigError, Settings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from streamfn.cli import canary, champion, data, local, serve

    parser = argparse.ArgumentParser(prog="streamfn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for part in (data, serve, local, champion, canary):
        part.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logs.configure(f"streamfn-{args.command}")
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, get_settings())
    except (ConfigError, CommandError) as error:
        console.print(f"[bold red]error:[/] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
