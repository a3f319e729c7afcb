"""A stand-in for the Lambda runtime interface emulator: one handler behind the Invoke API.

    python -m tests.descriptors.lambda_api functions.infer.app.handler --port 8080

The real emulator ships inside AWS's Lambda base images and cannot run here (no Docker engine).
This serves the same route, `POST /2015-03-31/functions/<name>/invocations`, with the same
contract boto3 relies on: the handler's answer as the body; a handler that raises answers 200
with `X-Amz-Function-Error: Unhandled` and an `errorMessage`/`errorType` body. Like the
emulator (and one Lambda execution environment), it runs one invocation at a time.
`GET /invocations` reports how many it has served.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

ROUTE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def load(handler: str) -> Callable[[dict[str, Any], Any], Any]:
    """The callable named `module.path.function`, as the runtime interface client finds it."""
    module, _, name = handler.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Context:
    """The parts of a Lambda context object that handlers read."""

    function_name = "function"
    aws_request_id = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def serve(handler: Callable[[dict[str, Any], Any], Any], host: str, port: int) -> HTTPServer:
    """A server (not started) that invokes `handler` once per request, one at a time."""
    served = {"invocations": 0, "errors": 0}

    class Invocations(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if ROUTE.match(self.path) is None:
                return self._answer(404, {"message": f"no route {self.path}"})
            event = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            served["invocations"] += 1
            try:
                return self._answer(200, handler(event, Context()))
            except Exception as error:  # the function's error travels back to the caller
                served["errors"] += 1
                body = {"errorMessage": str(error), "errorType": type(error).__name__,
                        "stackTrace": traceback.format_exc().splitlines()}  # fmt: skip
                return self._answer(200, body, {"X-Amz-Function-Error": "Unhandled"})

        def do_GET(self) -> None:
            self._answer(200, served)

        def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            pass

    return HTTPServer((host, port), Invocations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handler", help="module.path.function, as in the image's CMD")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = serve(load(args.handler), args.host, args.port)
    print(f"serving {args.handler} on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
