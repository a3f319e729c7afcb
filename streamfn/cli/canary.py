"""`streamfn canary`: the challenger serves a share of live traffic, widened step by step while
its live numbers hold, rolled back by itself when one falls, handed to promote's gate at the
last step."""

from __future__ import annotations

import argparse
import re
import signal
import threading
import time
from typing import TYPE_CHECKING

from streamfn.cli.champion import open_gate
from streamfn.cli.common import CommandError, Commands, Exit, configuration, console, outage
from streamfn.core.settings import Settings

if TYPE_CHECKING:
    from streamfn.challenger.canary import CanaryRun
    from streamfn.challenger.canary_state import CanaryLock

TICK_S = 1.0  # a pass: renew the lock, judge the windows closed meanwhile
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
# A canary that ends without promotion is a decision, as promote's refusal is (Exit.REFUSED);
# stopped by a signal, the command exits 130 as a shell does.
EXIT_CODES = {"promoted": Exit.OK, "refused": Exit.REFUSED, "rolled back": Exit.REFUSED}
STOPPED = 130


def duration(text: str) -> float:
    """`10m`, `30s`, `1h` or plain seconds, as seconds."""
    found = _DURATION.fullmatch(text.strip())
    if not found or float(found[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration, e.g. 10m, 30s or 1h")
    return float(found[1]) * UNITS[found[2]]


def steps(text: str) -> tuple[float, ...]:
    """`0.05,0.25,0.5` (or `5%,25%,50%`): rising shares above 0, at most 1."""
    try:
        found = tuple(float(p[:-1]) / 100 if p.endswith("%") else float(p)
                      for p in (part.strip() for part in text.split(",")))  # fmt: skip
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give shares, e.g. 0.05,0.25,0.5") from None
    if not found or not all(0 < s <= 1 for s in found) or list(found) != sorted(set(found)):
        raise argparse.ArgumentTypeError(f"{text!r}: each share above 0 and at most 1, rising")
    return found


def say(line: str) -> None:
    """One line of the canary's story, with the time (UTC)."""
    console.print(f"{time.strftime('%H:%M:%S', time.gmtime())} {line}", highlight=False)


def cmd_canary(args: argparse.Namespace, settings: Settings) -> int:
    """Run (or resume, roll back by hand, or preview) one model's canary."""
    from redis.exceptions import RedisError

    from streamfn.challenger.canary import CanaryError, CanaryRun, Plan
    from streamfn.challenger.canary_state import CanaryLock, CanaryLockedError, CanaryStore
    from streamfn.challenger.judge import Thresholds
    from streamfn.core import connections

    if not settings.MONITOR_WINDOW_S:
        raise configuration("the canary judges the monitoring windows: MONITOR_WINDOW_S is 0")
    doors = open_gate(settings, args.model)
    redis = connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER)
    limits = Thresholds(args.max_f1_drop, args.max_estimated_drop,
                        args.max_psi if args.max_psi is not None else settings.DRIFT_PSI,
                        args.max_error_rate,
                        args.min_rows if args.min_rows is not None
                        else settings.MONITOR_MIN_RECORDS)  # fmt: skip
    plan = Plan(args.model, args.steps, args.every, limits, settings.MONITOR_WINDOW_S,
                args.min_labelled, args.min_delta, args.gate)  # fmt: skip
    keys = settings.keys
    run = CanaryRun(plan, redis, keys, doors, CanaryStore(redis, keys, doors, args.model), say)
    lock = CanaryLock(redis, keys.canary_lock(args.model))
    try:
        if args.dry_run:
            return preview(run)
        if args.rollback:  # no lock: the command running sees it within a pass and stops
            return roll_back_by_hand(run)
        lock.take()
        try:
            run.start(args.again)
            return drive(run, lock)
        finally:
            lock.release()
    except (CanaryError, CanaryLockedError) as error:
        raise CommandError(str(error), Exit.REFUSED) from None
    except RedisError as error:
        raise outage(
            f"Redis at REDIS_URL={settings.REDIS_URL} did not answer ({error}); the canary's "
            "share is as it was: run the same command again to resume"
        ) from None


def drive(run: CanaryRun, lock: CanaryLock) -> int:
    """Pass after pass until the canary ends (0 promoted, 4 rolled back or refused); stopped
    by SIGINT or SIGTERM, it leaves the share where it is, for a restart to resume."""
    from mlflow.exceptions import MlflowException
    from redis.exceptions import RedisError

    from streamfn.models.registry import RegistryError

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            try:
                lock.renew()
                status = run.tick()
            except (RedisError, RegistryError, MlflowException) as error:
                say(f"[yellow]a pass failed ({error}); tried again in {TICK_S:g} s[/]")
                status = None
            if status is not None:
                return EXIT_CODES[status]
            stop.wait(TICK_S)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    share = run.canary.share if run.canary else 0.0
    say(f"stopped: v{run.challenger} keeps serving {share:.0%}, unwatched; the same command "
        "resumes it, `--rollback` ends it")  # fmt: skip
    return STOPPED


def roll_back_by_hand(run: CanaryRun) -> int:
    """Roll the running canary back now: share 0, tagged and logged as the command would."""
    from streamfn.challenger.canary import CanaryError

    found = run.attach()
    if found is None or not found.running:
        raise CanaryError(f"no canary of v{run.challenger} is running: nothing to roll back")
    run.roll_back("rolled back by hand (streamfn canary --rollback)")
    return 0


def preview(run: CanaryRun) -> int:
    """--dry-run: what the command would do from here, and what the newest window says."""
    from streamfn.core.canaries import Canary

    found = run.attach()
    plan = run.plan
    say(f"dry run, nothing changed: {plan.model} champion v{run.champion}, challenger "
        f"v{run.challenger}")  # fmt: skip
    if found is not None and found.running:
        say(f"its canary serves {found.share:.0%} (step {found.step + 1} of "
            f"{len(found.steps)}, since {_hms(found.since_ms)}): would resume there")  # fmt: skip
    elif found is not None:
        say(f"its canary ended {found.status} ({found.reason}): would need --again")
    else:
        say(f"no canary yet: would start at {plan.steps[0]:.0%}")
    shares = ", then ".join(f"{s:.0%}" for s in plan.steps)
    limits = plan.limits
    say(f"steps: {shares}, each at least {plan.every_s:g} s and one window held; then promote's "
        f"gate (--gate {plan.gate}, --min-labelled {plan.min_labelled}, --min-delta "
        f"{plan.min_delta:g})")  # fmt: skip
    say(f"rolls back when a window of {limits.min_rows:,} rows or more shows: macro F1 more than "
        f"{limits.max_f1_drop:g} below the champion's (labelled, or estimated: "
        f"{limits.max_estimated_drop:g}), prediction PSI against the champion's above "
        f"{limits.max_psi:g}, or an error rate above {limits.max_error_rate:.1%}")  # fmt: skip
    base = found if found is not None and found.running else None
    run.canary = base or Canary(run.challenger, 0.0)  # since 0: every window kept
    verdicts = run.verdicts(run.canary)
    if verdicts:
        newest = verdicts[-1]
        action = {True: "would hold", False: "would roll back", None: "would wait"}[newest.held]
        say(f"the newest closed window ({_hms(newest.figures.start * 1000)}): {newest.reason}: "
            f"{action}")  # fmt: skip
    else:
        say("no closed window of these versions yet")
    return 0


def _hms(epoch_ms: int) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch_ms / 1000))


def register(commands: Commands) -> None:
    """Add `canary`."""
    canary = commands.add_parser(
        "canary",
        help="let the challenger serve a share of live traffic, widened step by step while its "
        "live numbers hold; rolled back by itself when they fall",
    )
    canary.add_argument("--model", required=True, help="an API name of MODELS")
    canary.add_argument("--steps", type=steps, default="0.05,0.25,0.5", metavar="SHARES",
                        help="the shares served, step by step")  # fmt: skip
    canary.add_argument("--every", type=duration, default="10m", metavar="DURATION",
                        help="how long each step lasts at least")  # fmt: skip
    canary.add_argument(
        "--max-f1-drop",
        type=float,
        default=0.02,
        help="labelled macro F1 below the champion's by more: roll back",
    )
    canary.add_argument(
        "--max-estimated-drop",
        type=float,
        default=0.02,
        help="estimated macro F1 below the champion's by more: roll back",
    )
    canary.add_argument("--max-psi", type=float, default=None,
                        help="prediction PSI against the champion's above: roll back "
                        "(default DRIFT_PSI)")  # fmt: skip
    canary.add_argument(
        "--max-error-rate",
        type=float,
        default=0.01,
        help="canary rows it cannot serve, share above: roll back",
    )
    canary.add_argument("--min-rows", type=int, default=None,
                        help="rows both scored for a window to be judged (default "
                        "MONITOR_MIN_RECORDS)")  # fmt: skip
    canary.add_argument(
        "--min-labelled",
        type=int,
        default=200,
        help="promote's gate at the end: labelled rows at least",
    )
    canary.add_argument(
        "--min-delta",
        type=float,
        default=0.0,
        help="promote's gate at the end: macro F1 tolerance",
    )
    canary.add_argument(
        "--gate",
        choices=("labels", "estimated"),
        default="labels",
        help="promote's gate at the end",
    )
    canary.add_argument(
        "--again", action="store_true", help="start over a challenger whose canary ended"
    )
    canary.add_argument(
        "--rollback", action="store_true", help="roll the running canary back now, by hand"
    )
    canary.add_argument("--dry-run", action="store_true", help="say what it would do, change "
                        "nothing")  # fmt: skip
    canary.set_defaults(handler=cmd_canary)
