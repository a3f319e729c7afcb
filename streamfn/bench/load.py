"""HTTP load from a second process: wrk, at full speed or paced to a rate, with its percentiles."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# wrk's Lua hooks: one POST body read from a file, and, when paced, a pause per connection.
_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
{pacing}
"""
_PACING = "function delay() return {ms} end"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class LoadError(RuntimeError):
    """wrk is missing or failed."""


@dataclass(frozen=True)
class Load:
    """What wrk measured: requests, the refused ones, and the answer-time percentiles."""

    seconds: float
    requests: int
    refused: int  # non-2xx answers
    p50_ms: float
    p99_ms: float

    @property
    def accepted(self) -> int:
        """Requests answered 2xx."""
        return self.requests - self.refused

    @property
    def rate(self) -> float:
        """Accepted requests per second."""
        return self.accepted / self.seconds


def require_wrk() -> str:
    """The wrk binary, or LoadError saying how to install it."""
    binary = shutil.which("wrk")
    if binary is None:
        raise LoadError("wrk is not on PATH: apt-get install -y wrk (macOS: brew install wrk)")
    return binary


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(output: str) -> Load:
    """The numbers of wrk's report (run with --latency)."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise LoadError(f"wrk printed no totals:\n{output}")
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.M))
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    return Load(
        seconds=_ms(total[2] + total[3]) / 1000,
        requests=int(total[1]),
        refused=(int(refused[1]) if refused else 0) + failed,
        p50_ms=_ms(percentiles["50"]) if "50" in percentiles else float("nan"),
        p99_ms=_ms(percentiles["99"]) if "99" in percentiles else float("nan"),
    )


def drive(
    url: str,
    body: bytes,
    seconds: float,
    connections: int,
    workdir: Path,
    rate: float | None = None,
) -> Load:
    """POST body to url for `seconds` over `connections`, as fast as possible or at ~`rate`/s."""
    binary = require_wrk()
    body_path = workdir / "body.json"
    body_path.write_bytes(body)
    pacing = ""
    if rate is not None:
        # Each connection waits this long between answer and next request: about `rate` in all.
        pacing = _PACING.format(ms=max(int(connections * 1000 / rate), 0))
    script = workdir / "post.lua"
    script.write_text(_SCRIPT.format(body=body_path, pacing=pacing))
    command = [binary, "-t1", f"-c{connections}", f"-d{max(int(seconds), 1)}s", "--latency",
               "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise LoadError(f"wrk failed: {done.stderr or done.stdout}")
    return parse(done.stdout)
