"""The fixed ports of `streamfn up` and of the compose file's services: a test that binds them
waits for them to be free (the last such test's processes may still be exiting), and when they
stay taken names the processes that listen there, so that a clash says who it is with."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from streamfn.local.stack import port_is_free

LISTEN = "0A"  # a socket's state in /proc/net/tcp


def listeners(ports: Iterable[int]) -> dict[int, list[str]]:
    """Each port's listening processes (their command lines), read from /proc."""
    wanted, inodes = set(ports), {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == LISTEN and port in wanted:
                inodes[f"socket:[{fields[9]}]"] = port
    found: dict[int, list[str]] = {}
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            port = inodes.get(str(fd.readlink()))
            if port is not None:
                command = (fd.parent.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found.setdefault(port, []).append(f"{fd.parent.parent.name}: {command.decode()}")
        except OSError:  # the process ended while we looked
            continue
    return found


def wait_free(ports: Iterable[int], timeout: float = 60.0) -> None:
    """Return once nothing listens on any of `ports`; fail naming the listeners at the
    deadline."""
    ports = tuple(ports)
    deadline = time.monotonic() + timeout
    while busy := [p for p in ports if not port_is_free(p)]:
        if time.monotonic() > deadline:
            held = listeners(busy)
            pytest.fail(f"ports {busy} are taken, by {held or 'processes /proc does not show'}")
        time.sleep(0.2)
