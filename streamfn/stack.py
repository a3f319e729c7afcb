"""`streamfn up`: the local stack as child processes, started in order with health checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from tenacity import RetryError, retry_if_result, stop_after_delay, wait_fixed
from tenacity import Retrying as _Retrying

STOP_GRACE_S = 15.0


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
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    return check


class Stack:
    """Starts services in order, each logging to a file, and stops them in reverse order."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.running: list[tuple[Service, subprocess.Popen[bytes]]] = []

    def check_ports(self, services: list[Service]) -> None:
        """Refuse to start when a port the stack needs is already taken."""
        busy = [(s.name, p) for s in services for p in s.ports if not port_is_free(p)]
        if busy:
            names = ", ".join(f"{name} :{port}" for name, port in busy)
            raise StackError(
                f"port(s) already in use: {names}. Stop whatever listens there "
                "(an earlier `streamfn up`?) and try again."
            )

    def start(self, service: Service) -> None:
        """Start one service and wait until it is ready, or raise with the tail of its log."""
        log_path = self.logs / f"{service.name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                service.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **service.env},
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )
        self.running.append((service, process))
        waiting = _Retrying(
            stop=stop_after_delay(service.start_timeout_s),
            wait=wait_fixed(0.2),
            retry=retry_if_result(lambda ok: not ok),
        )
        try:
            waiting(lambda: process.poll() is not None or service.ready())
        except RetryError:
            raise StackError(self._failure(service, "did not become ready", log_path)) from None
        if process.poll() is not None:
            raise StackError(self._failure(service, f"exited ({process.returncode})", log_path))

    @staticmethod
    def _failure(service: Service, what: str, log_path: Path) -> str:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        return f"{service.name} {what}; last lines of {log_path}:\n" + "\n".join(tail)

    def stop(self) -> None:
        """SIGTERM every child, newest first, then SIGKILL what outlives the grace period."""
        for _service, process in reversed(self.running):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.running.clear()

    def pids(self) -> list[int]:
        """The PIDs of the running children."""
        return [p.pid for _, p in self.running]


def cli(*args: str) -> list[str]:
    """A `streamfn` subcommand run by this interpreter (works without the venv on PATH)."""
    return [sys.executable, "-m", "streamfn.cli", *args]
