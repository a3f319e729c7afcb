"""Security headers on every answer of the app, as one raw ASGI middleware.

The two pages (the console at /ui, the API's docs at /docs) and their static files are served
with a Content-Security-Policy that lets them load scripts, styles and data from this origin only:
they hold no inline script or style, the console's charts style through the CSSOM, and swagger-ui
is served from the package (streamfn/ingest/static/vendor). The key a user types sits in the
tab's sessionStorage, so nothing from another origin may run beside it, and neither page may be
framed (clickjacking). Every other answer is data: it may never be framed or run as a page, and
no cache keeps it (predictions, labels, object downloads).

A raw middleware, not Starlette's BaseHTTPMiddleware: that one wraps each request in a task and a
stream, a cost the hot route does not pay for a few header lines.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGES = ("/ui", "/docs")
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"

Headers = list[tuple[bytes, bytes]]
_EVERY: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # for browsers that ignore frame-ancestors
    (b"referrer-policy", b"no-referrer"),
]
PAGE_HEADERS: Headers = [
    *_EVERY,
    (b"content-security-policy", PAGE_CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
]
DATA_HEADERS: Headers = [
    *_EVERY,
    (b"content-security-policy", DATA_CSP.encode()),
    (b"cache-control", b"no-store"),
]


def route_path(scope: Scope) -> str:
    """The request's path within the app (without the prefix it is served under, if any)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_page(path: str) -> bool:
    """Whether a path is one of the pages or their static files."""
    return any(path == page or path.startswith(f"{page}/static/") for page in PAGES)


class SecurityHeaders:
    """Adds the headers of a page or of data to each answer (those it sets itself win)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = PAGE_HEADERS if is_page(route_path(scope)) else DATA_HEADERS

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
