"""What every subcommand shares: the console, the exit codes and the error a command stops with,
the MLflow check."""

from __future__ import annotations

import argparse
import enum
from typing import TYPE_CHECKING

import httpx
from rich.console import Console

if TYPE_CHECKING:
    from streamfn.models.registry import RegistryError
    from streamfn.sink.bucket import BucketUnavailableError

console = Console(stderr=True, soft_wrap=True)  # messages stay whole, for copy and paste

# The `commands` object argparse gives add_subparsers; its type is private.
Commands = argparse._SubParsersAction


class Exit(enum.IntEnum):
    """The exit codes of every command, so a script can tell what to do next (docs/operations.md
    has the table)."""

    OK = 0
    FAILED = 1  # it ran, and part of the work failed (records rejected, parity missed); a crash
    USAGE = 2  # argparse's own: a flag or an argument is wrong; the command did nothing
    CONFIG = 3  # a variable, a name (model, version, bucket) or a tool is not usable here
    REFUSED = 4  # promote or rollback looked and decided not to move the alias
    OUTAGE = 5  # Redis, MLflow, S3 or the ingest did not answer: the same command may work later


class CommandError(RuntimeError):
    """A command cannot go on; the message says what to do, the code what kind of stop it is."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


def usage(message: str) -> CommandError:
    """A flag's value (or a combination of flags) this command cannot take."""
    return CommandError(message, Exit.USAGE)


def configuration(message: str) -> CommandError:
    """Something the command was pointed at is not usable: fix a variable or a name."""
    return CommandError(message, Exit.CONFIG)


def outage(message: str) -> CommandError:
    """A service did not answer: nothing is wrong with the command, try again when it is back."""
    return CommandError(message, Exit.OUTAGE)


def storage_error(error: BucketUnavailableError, hint: str = "") -> CommandError:
    """S3's failure as a configuration error when S3 answered (no such bucket, access denied),
    as an outage when it did not."""
    from botocore.exceptions import ClientError

    message = f"{error}{hint}"
    return configuration(message) if isinstance(error.__cause__, ClientError) else outage(message)


def registry_error(error: RegistryError) -> CommandError:
    """The registry's failure: a name or version it does not have, or no answer at all."""
    from streamfn.models.registry import NotRegisteredError

    if isinstance(error, NotRegisteredError):
        return configuration(str(error))
    return outage(str(error))


def check_mlflow(uri: str) -> None:
    """Fail fast, with the fix, when an MLflow server URI does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        raise outage(
            f"MLflow is not reachable at MLFLOW_TRACKING_URI={uri} ({error}). Start a server "
            "(`streamfn up` does) or point MLFLOW_TRACKING_URI at a SQLite store, "
            "e.g. sqlite:///mlflow.db"
        ) from None


class _OldSpelling(argparse.Action):
    """A flag's former name, kept for one release: hidden from --help, says the new one."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        console.print(
            f"[yellow]{option_string} is now {self.new}; the old spelling goes in the next "
            "release[/]"
        )
        setattr(namespace, self.dest, values)


def old_spelling(parser: argparse.ArgumentParser, old: str, new: argparse.Action) -> None:
    """Accept `old` as well as the flag `new` (same value and meaning), without showing it."""
    parser.add_argument(
        old,
        action=_OldSpelling,
        new=new.option_strings[0],
        dest=new.dest,
        type=new.type,
        metavar=new.metavar,
        default=argparse.SUPPRESS,  # the new flag's default stands
        help=argparse.SUPPRESS,
    )
