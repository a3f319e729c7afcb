"""Who may call the API: which key each route takes, and whether the process may start at all.

Closed unless opened. With INGEST_API_KEY set, every route asks for it as the `X-API-Key`
header (401 without it), POST /feedback the FEEDBACK_API_KEY when one is set, but for the open
ones: GET /health (probes), /docs and /openapi.json (a browser cannot send a header to them, and
they hold no data), and the console's page /ui and the two pages' static files (the console page
asks for the key, then sends it with every request for data). A route added later is guarded
without a word, because the check is one middleware in front of them all, not a call per route.

A process that listens beyond loopback (uvicorn on 0.0.0.0 or a LAN address, the Lambda behind
API Gateway) refuses to start without a key, unless INGEST_AUTH=none says so on purpose; one log
line at start says which it is either way. `streamfn up` listens on 127.0.0.1 and needs no key.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets

import orjson
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from streamfn.api.headers import is_page, route_path
from streamfn.core import metrics
from streamfn.core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

HEADER = b"x-api-key"
OPEN_PATHS = frozenset({"/health", "/docs", "/openapi.json", "/ui"})
FEEDBACK_PATH = "/feedback"
_REFUSED = orjson.dumps({"detail": "missing or wrong X-API-Key"})
_REFUSED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_REFUSED)).encode()),
    (b"www-authenticate", b"ApiKey"),
]


def is_open(path: str) -> bool:
    """Whether a path answers without a key."""
    return path in OPEN_PATHS or is_page(path)


def beyond_loopback(host: str | None) -> bool:
    """Whether a listening address is reachable from other machines (None: behind a gateway)."""
    if host is None:
        return True
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name: it may resolve to anything


def auth_mode(settings: Settings, host: str | None) -> str:
    """INGEST_AUTH, or what it is when unset: `key` beyond loopback, `none` on it."""
    return settings.INGEST_AUTH or ("key" if beyond_loopback(host) else "none")


def check_start(settings: Settings, host: str | None) -> None:
    """Refuse to start (ConfigError) a process that must have a key and has none; log one
    line saying how the API is guarded. `host`: where it listens (None: behind API Gateway)."""
    where = "behind API Gateway" if host is None else f"on {host}"
    if settings.INGEST_API_KEY is not None:
        feedback = "FEEDBACK_API_KEY" if settings.FEEDBACK_API_KEY else "INGEST_API_KEY"
        log.info("ingest auth: key", extra={"auth": "key", "listen": where, "feedback": feedback,
                                            "open_routes": sorted(OPEN_PATHS)})  # fmt: skip
        return
    if auth_mode(settings, host) == "key":
        why = "INGEST_AUTH=key" if settings.INGEST_AUTH else f"ingest listens {where}"
        raise ConfigError(
            f"INGEST_API_KEY is not set and {why}, reachable beyond this machine: set "
            "INGEST_API_KEY (every route but /health, /docs and /openapi.json then asks for it "
            "as X-API-Key), or set INGEST_AUTH=none to serve without a key on purpose"
        )
    reason = "INGEST_AUTH=none" if settings.INGEST_AUTH else "loopback only"
    log.warning("ingest auth: none, every route is open to whoever reaches it",
                extra={"auth": "none", "listen": where, "reason": reason})  # fmt: skip


def client_headers(key: SecretStr | None) -> dict[str, str]:
    """The header a client of the API sends with a key (none without one)."""
    return {} if key is None else {"x-api-key": key.get_secret_value()}


def _key(secret: SecretStr | None) -> bytes | None:
    return None if secret is None else secret.get_secret_value().encode()


class KeyRequired:
    """Refuses (401) a request without the key its route takes; the open routes pass."""

    def __init__(
        self, app: ASGIApp, ingest: SecretStr | None, feedback: SecretStr | None = None
    ) -> None:
        self.app = app
        self.ingest = _key(ingest)
        self.feedback = _key(feedback) or self.ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = route_path(scope)
            expected = self.feedback if path == FEEDBACK_PATH else self.ingest
            if expected is not None and not is_open(path) and not _sent(scope, expected):
                metrics.INGEST_REJECTIONS.labels("unauthorized").inc()
                await send({"type": "http.response.start", "status": 401,
                            "headers": _REFUSED_HEADERS})  # fmt: skip
                await send({"type": "http.response.body", "body": _REFUSED})
                return
        await self.app(scope, receive, send)


def _sent(scope: Scope, expected: bytes) -> bool:
    """Whether the request carries the expected key (compared in constant time)."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return secrets.compare_digest(value, expected)
    return False
