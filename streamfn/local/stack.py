"""`streamfn up`: the local stack as child processes, started in order with health checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from tenacity import RetryError, retry_if_result, stop_after_delay, wait_fixed
from tenacity import Retrying as _Retrying

from streamfn.core import connections

STOP_GRACE_S = 15.0
# How long `up` waits for a port held by a run stopped a moment ago before it refuses to start.
PORT_GRACE_S = 5.0


class StackError(RuntimeError):
    """A prerequisite is missing or a service did not come up; the message says what to do."""


@dataclass
class Service:
    """One child process: how to start it and how to tell it is ready."""

    name: str
    command: list[str]
    ready: Callable[[], bool]
    ports: tuple[int, ...] = ()  # checked free before anything starts
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 60.0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: GET url answers 200."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def always_ok() -> bool:
    """A readiness check for a process with nothing to ask: started is ready."""
    return True


def redis_ok(url: str) -> Callable[[], bool]:
    """A readiness check: Redis answers PING."""

    def check() -> bool:
        try:
            return bool(connections.probe_client(url).ping())
        except redis.RedisError:
            return False

    return check


class Process:
    """A started child: its process group, its log, and the signals it can be sent."""

    def __init__(self, service: Service, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.service = service
        self.popen = popen
        self.log = log
        self.terminated = False

    @property
    def name(self) -> str:
        """The service's name."""
        return self.service.name

    @property
    def pid(self) -> int:
        """The child's PID (also its process group)."""
        return self.popen.pid

    @property
    def running(self) -> bool:
        """Whether the child has not exited yet."""
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send a signal to the child's whole group (servers with workers of their own too)."""
        if self.running:
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, once: a poller takes a second one as "leave now, mid-batch"."""
        if not self.terminated:
            self.terminated = True
            self.signal(signal.SIGTERM)
            self.signal(signal.SIGCONT)  # a SIGSTOPped child handles SIGTERM only once resumed

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL if still running after `grace_s`; the exit code."""
        self.terminate()
        try:
            return self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        """The last lines of the child's log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Stack:
    """Starts services in order, each logging to a file, and stops them in reverse order."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ) if env is None else env  # what every child starts from
        self.running: list[Process] = []

    def check_ports(self, services: list[Service], grace_s: float = PORT_GRACE_S) -> None:
        """Refuse to start when a port the stack needs is taken, after `grace_s` (the processes
        of a run stopped a moment ago may still be letting theirs go)."""
        deadline = time.monotonic() + grace_s
        while busy := [(s.name, p) for s in services for p in s.ports if not port_is_free(p)]:
            if time.monotonic() >= deadline:
                names = ", ".join(f"{name} :{port}" for name, port in busy)
                raise StackError(
                    f"port(s) already in use: {names}. Stop whatever listens there "
                    "(an earlier `streamfn up`?) and try again."
                )
            time.sleep(0.2)

    def spawn(self, service: Service) -> Process:
        """Start one service without waiting for it, logging to logs/<name>.log."""
        log_path = self.logs / f"{service.name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                service.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **service.env},
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )
        process = Process(service, popen, log_path)
        self.running.append(process)
        return process

    def start(self, service: Service) -> Process:
        """Start one service and wait until it is ready, or raise with the tail of its log."""
        process = self.spawn(service)
        waiting = _Retrying(
            stop=stop_after_delay(service.start_timeout_s),
            wait=wait_fixed(0.2),
            retry=retry_if_result(lambda ok: not ok),
        )
        try:
            waiting(lambda: not process.running or service.ready())
        except RetryError:
            raise StackError(self._failure(process, "did not become ready")) from None
        if not process.running:
            raise StackError(self._failure(process, f"exited ({process.popen.returncode})"))
        return process

    @staticmethod
    def _failure(process: Process, what: str) -> str:
        return f"{process.name} {what}; last lines of {process.log}:\n{process.tail()}"

    def stop(self) -> None:
        """Stop every child, newest first (SIGTERM, then SIGKILL after the grace period)."""
        for process in reversed(self.running):
            process.stop()
        self.running.clear()

    def pids(self) -> list[int]:
        """The PIDs of the running children."""
        return [p.pid for p in self.running]


def cli(*args: str) -> list[str]:
    """A `streamfn` subcommand run by this interpreter (works without the venv on PATH)."""
    return [sys.executable, "-m", "streamfn.cli", *args]
