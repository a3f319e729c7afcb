"""The HTTP side of a long-running worker (poller, producer): GET /health and GET /metrics.

/health answers 200 while the worker is doing its job and 503 when it is not (starting, or stuck
behind an outage), with a JSON body of its counts; /metrics is Prometheus's text format.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# A worker that has not done a unit of work for this long is reported unhealthy.
STALE_AFTER_S = 60.0

Check = Callable[[], tuple[bool, dict[str, Any]]]


def _handler(check: Check) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/metrics":
                self._answer(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/health":
                ok, details = check()
                body = orjson.dumps({"status": "ok" if ok else "unavailable", **details})
                self._answer(200 if ok else 503, body, "application/json")
            else:
                self._answer(404, b'{"detail": "not found: try /health or /metrics"}',
                             "application/json")  # fmt: skip

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not worth a log line

    return Handler


# B104 (bind to all interfaces) on purpose: the kubelet and Prometheus reach /health and /metrics
# from outside the pod or container, and they carry counts, never records or keys.
def serve(port: int, check: Check, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # nosec B104
    """Serve /health and /metrics on `port` from a daemon thread; return the server."""
    server = ThreadingHTTPServer((host, port), _handler(check))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
