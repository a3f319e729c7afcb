"""The docs page and the console in a real browser (Debian's chromium, headless): under their
Content-Security-Policy nothing is blocked, nothing is fetched from another origin, and the docs
page renders every operation and can try one out."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from streamfn.app import create_app
from streamfn.core.settings import Settings
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.slow
TIMEOUT_MS = 30_000
# Every violation of the page's policy, as the browser reports it.
VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a private port; its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(served: str) -> Iterator[tuple[Any, list[str]]]:
    """A browser page that records the URL of every request it makes."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not on PATH: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )  # fmt: skip
        opened = browser.new_page()
        requested: list[str] = []
        opened.on("request", lambda request: requested.append(request.url))
        opened.add_init_script(VIOLATIONS)
        yield opened, requested
        browser.close()


def test_the_docs_page_renders_and_tries_a_route_with_nothing_blocked(
    served: str, page: tuple[Any, list[str]]
) -> None:
    browser_page, requested = page
    browser_page.goto(f"{served}/docs")
    browser_page.wait_for_selector(".opblock", timeout=TIMEOUT_MS)
    assert browser_page.locator(".opblock").count() >= 6  # every route of the API
    health = browser_page.locator(".opblock", has_text="/health").first
    health.locator(".opblock-summary").click()
    health.locator("button.try-out__btn").click()
    health.locator("button.execute").click()
    status = health.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=TIMEOUT_MS)
    assert status.inner_text().strip().startswith("200")
    assert browser_page.evaluate("window.__violations") == []
    assert [url for url in requested if not url.startswith(served)] == []


def test_the_console_page_loads_with_nothing_blocked(
    served: str, page: tuple[Any, list[str]]
) -> None:
    browser_page, requested = page
    browser_page.goto(f"{served}/ui")
    browser_page.wait_for_selector("#status", timeout=TIMEOUT_MS)
    wait_for(lambda: any("/ui/api/status" in url for url in requested), timeout=30)
    assert browser_page.evaluate("window.__violations") == []
    assert [url for url in requested if not url.startswith((served, "data:"))] == []
