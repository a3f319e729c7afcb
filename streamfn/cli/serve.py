"""`streamfn ingest` and `streamfn poll`: the two long-running processes of the pipeline."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import Any

from streamfn.cli.common import Commands
from streamfn.core import plugins
from streamfn.core.settings import INFER_PORT, INGEST_PORT, Settings, load_settings

POLL_OPTIONS = ("BATCH_SIZE", "BATCH_WINDOW_MS", "CLAIM_IDLE_MS", "MAX_DELIVERIES")


def ingest_alive() -> tuple[bool, dict[str, Any]]:
    """The ingest's /health on METRICS_PORT: the process answers, whatever Redis says (what a
    liveness probe asks; readiness is /health on the API's port)."""
    return True, {"role": "ingest"}


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the ingest API with uvicorn (not without a key beyond loopback, unless told)."""
    import uvicorn

    from streamfn.api import auth
    from streamfn.core import health

    auth.check_start(settings, args.host)
    port = args.metrics_port or settings.METRICS_PORT
    if port:
        health.serve(port, ingest_alive)
    uvicorn.run(
        "streamfn.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_infer(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the infer function over HTTP (POST / a batch event), for a function platform."""
    import uvicorn

    from streamfn.infer.http import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning",
                access_log=False)  # fmt: skip
    return 0


def stop_on_signals() -> threading.Event:
    """First SIGTERM/SIGINT sets the event (finish the batch in flight); a second one exits."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            raise SystemExit(128 + signum)  # second signal: leave now
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    return stopping


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    """One poller: read batches, invoke infer, settle them; SIGTERM/SIGINT finish the batch."""
    from streamfn.core import crash, health
    from streamfn.poller import invoke
    from streamfn.poller.loop import Poller, consumer_name
    from streamfn.stream.base import SourceOptions, backend

    overrides: dict[str, object] = {
        n: getattr(args, n.lower()) for n in POLL_OPTIONS if getattr(args, n.lower()) is not None
    }
    if args.source:  # checked as STREAM_BACKEND is: what it needs must be set
        overrides["STREAM_BACKEND"] = args.source
    if overrides:
        settings = load_settings(**overrides)
    # Signals first: building the invoker loads the models, and a stop may come meanwhile.
    stopping = stop_on_signals()
    started = time.monotonic()
    poller: Poller | None = None

    def healthy() -> tuple[bool, dict[str, Any]]:
        if poller is None or poller.last_poll is None:
            return False, {"state": "starting", "seconds": round(time.monotonic() - started, 1)}
        idle = time.monotonic() - poller.last_poll
        return idle < health.STALE_AFTER_S, {"consumer": poller.consumer,
                                             "last_poll_s_ago": round(idle, 1)}  # fmt: skip

    port = args.metrics_port or settings.METRICS_PORT
    if port:
        health.serve(port, healthy)
    options = SourceOptions(
        settings, args.consumer or consumer_name(), crash.exit_at(settings.CRASH_AT),
        chosen_partitions(args.partitions, settings.STREAM_PARTITIONS),
    )  # fmt: skip
    invoker = invoke.from_settings(settings)
    source = backend(settings.STREAM_BACKEND).source(options)
    poller = Poller(source, invoker, stopping)
    poller.run(burst=args.burst)
    return 0


def chosen_partitions(given: str | None, partitions: int) -> list[int] | None:
    """The partitions `--partitions` names ("0,2" or "0-2"), or None for all; SystemExit naming
    what is wrong."""
    if given is None:
        return None
    chosen: set[int] = set()
    for part in given.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or int(high or low) < int(low):
            raise SystemExit(f"--partitions {given!r}: give numbers like 0,2 or 0-3")
        chosen.update(range(int(low), int(high or low) + 1))
    if not chosen or max(chosen) >= partitions:
        raise SystemExit(
            f"--partitions {given!r}: STREAM_PARTITIONS={partitions} has partitions 0 to "
            f"{partitions - 1}"
        )
    return sorted(chosen)


def register(commands: Commands) -> None:
    """Add `ingest` and `poll`."""
    ingest = commands.add_parser("ingest", help="serve the ingest API under uvicorn")
    # Loopback unless told: a deployment names 0.0.0.0 (Dockerfile, compose, k8s) on purpose.
    ingest.add_argument("--host", default="127.0.0.1")
    ingest.add_argument("--port", type=int, default=INGEST_PORT)
    ingest.add_argument(
        "--metrics-port", type=int,
        help="serve /health (the process alive) and /metrics apart, open (default: METRICS_PORT)",
    )  # fmt: skip
    ingest.set_defaults(handler=cmd_ingest)

    infer = commands.add_parser(
        "infer", help="serve the infer function over HTTP (OpenFaaS, Knative, Cloud Run)"
    )
    infer.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    infer.add_argument("--port", type=int, default=INFER_PORT, help="the port to listen on")
    infer.set_defaults(handler=cmd_infer)

    poll = commands.add_parser("poll", help="one poller: stream → infer → S3")
    for name in POLL_OPTIONS:
        flag = "--" + name.lower().replace("_", "-")
        poll.add_argument(flag, type=int, dest=name.lower(), help=f"default: {name}")
    poll.add_argument(
        "--source", choices=tuple(plugins.BACKENDS),
        help="read the Redis Stream, or a Kinesis stream or SQS queue as Lambda's event source "
        "mapping would (default: STREAM_BACKEND)",
    )  # fmt: skip
    poll.add_argument("--consumer", help="consumer name; default: host-pid-random")
    poll.add_argument("--partitions", help="the partitions to read, e.g. 0,2 or 0-3 (default: all)")
    poll.add_argument("--burst", action="store_true", help="drain the stream, then exit")
    poll.add_argument(
        "--metrics-port", type=int,
        help="serve /health and Prometheus /metrics on this port (default: METRICS_PORT)",
    )  # fmt: skip
    poll.set_defaults(handler=cmd_poll)
