"""Crash points: named steps of the exactly-once protocol where a test can stop a process dead.

The infer function and the poller call their checkpoint at each step. In production the
checkpoint does nothing. Tests arm one step, in process (a checkpoint that raises `Crash`) or in a
real poller (CRASH_AT, which makes the process exit at once, as a SIGKILL would), and then prove
that every row is still written exactly once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

Step = Literal["after_intent", "after_put", "after_done", "before_ack"]
STEPS: tuple[Step, ...] = ("after_intent", "after_put", "after_done", "before_ack")
EXIT_CODE = 137  # what a SIGKILLed process reports
Checkpoint = Callable[[Step], None]


class Crash(BaseException):
    """A simulated crash: a BaseException, so no `except Exception` of the code under test
    catches it."""


def no_crash(_step: Step) -> None:
    """The production checkpoint: nothing happens."""


def exit_at(armed: Step | None) -> Checkpoint:
    """A checkpoint that ends this process at once when it reaches `armed` (None: never)."""
    if armed is None:
        return no_crash

    def checkpoint(step: Step) -> None:
        if step == armed:
            log.warning("crash point reached: exiting", extra={"step": step})
            logging.shutdown()
            os._exit(EXIT_CODE)

    return checkpoint


def raise_at(armed: Step) -> Checkpoint:
    """A checkpoint that raises Crash at `armed`, once; later passes go through (a restart)."""
    fired = False

    def checkpoint(step: Step) -> None:
        nonlocal fired
        if step == armed and not fired:
            fired = True
            raise Crash(step)

    return checkpoint
