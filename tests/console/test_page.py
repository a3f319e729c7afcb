"""The console in a real browser (Debian's chromium, headless, driven by Playwright) against a
real pipeline: redis-server, `streamfn ingest`, a `streamfn poll` child, moto's S3 server, an
MLflow server, and `streamfn produce --drift … --labels` children.

Set STREAMFN_SCREENSHOT_DIR to keep the screenshots (the README's is docs/console.png).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streamfn.core import series
from streamfn.core.keys import Keys
from streamfn.local.stack import cli
from tests.conftest import wait_for
from tests.faults.pipeline import Pipeline

pytestmark = pytest.mark.slow
DRIFT = "Mental Fatigue Score=+2.5"
WINDOW_S = "10"
TIMEOUT_MS = 60_000


# Elements that stick out of the viewport, other than inside a sideways-scrolling box.
WIDER_THAN_THE_SCREEN = """
[...document.querySelectorAll("body *")]
  .filter((e) => !e.closest(".scroll") && e.getBoundingClientRect().right > window.innerWidth + 1)
  .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not on PATH: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


# Every violation of the page's Content-Security-Policy, as the browser reports it.
VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""


def seen(page: Any, condition: str) -> None:
    """Wait until a JavaScript condition holds in the page."""
    wait_for(lambda: page.evaluate(condition), timeout=TIMEOUT_MS / 1000, interval=0.1)


def produce(pipeline: Pipeline, name: str, count: int, seed: int, *extra: str) -> None:
    """`streamfn produce` of lightgbm records with labels; wait until every one is accepted."""
    command = cli("produce", "--model", "lightgbm", "--count", str(count), "--rate", "600",
                  "--batch", "50", "--seed", str(seed), "--labels", *extra)  # fmt: skip
    child = pipeline.spawn(name, command)
    pipeline.wait(lambda: not child.running, 90, f"{name} finished")
    lines = child.log.read_text().splitlines()
    (summary,) = [orjson.loads(line) for line in lines if '"producer finished"' in line]
    assert (summary["accepted"], summary["undelivered"]) == (count, 0), summary


def drifted_window(url: str) -> dict[str, Any] | None:
    """The newest window of lightgbm whose drifted input is flagged, if there is one yet."""
    windows = httpx.get(f"{url}/monitoring?model=lightgbm&windows=10", timeout=5).json()["windows"]
    for window in windows:
        if window["features"].get("Mental Fatigue Score", {}).get("flag") == "drift":
            return window
    return None


@pytest.fixture
def running(pipeline: Pipeline, challenged: str) -> Pipeline:
    """A pipeline that has served plain records, then drifted ones, all with ground truth, and
    a lightgbm challenger in shadow that serves a quarter of them (CANARY_SHARE)."""
    pipeline.start("p1", MONITOR_WINDOW_S=WINDOW_S, MONITOR_MIN_RECORDS="100", CANARY_SHARE="0.25")
    pipeline.wait_challenger("lightgbm", challenged, "p1")
    produce(pipeline, "plain", 1200, 3)
    produce(pipeline, "drifted", 9000, 4, "--drift", DRIFT)
    pipeline.drain()
    url = pipeline.env["INGEST_URL"]
    pipeline.wait(lambda: drifted_window(url), 30, "a window flagged drift")
    return pipeline


def test_the_console_shows_the_live_pipeline(
    running: Pipeline, challenged: str, browser: Any, tmp_path: Path
) -> None:
    url = running.env["INGEST_URL"]
    processed = int(running.r.hget(Keys().totals(), series.WRITTEN) or 0)
    assert processed >= 10_200  # every record produced (and the warm-up's) was written
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.add_init_script(VIOLATIONS)
    page.goto(f"{url}/ui")
    # Polled from outside the page: its Content-Security-Policy forbids the eval that
    # wait_for_function would run in it.
    seen(page, "Number(document.body.dataset.refreshed || 0) >= 1")

    # Status: the figures are the pipeline's own numbers, and the chart was drawn.
    def figure(name: str) -> str:
        return page.locator(f'[data-figure="{name}"]').inner_text()

    assert figure("processed") == f"{processed:,}"
    assert int(figure("ingested").replace(",", "")) >= processed
    assert (figure("lag"), figure("pending"), figure("dead_letters")) == ("0", "0", "0")
    assert figure("pollers") == "1 of 1"
    assert page.locator("#rate-chart canvas").count() == 1

    # Models: each served version, and when it first wrote.
    lightgbm = page.locator("#models tbody tr", has_text="lightgbm")
    assert re.search(r"v1 since \d{4}-\d\d-\d\d", lightgbm.inner_text())
    assert lightgbm.locator("td").nth(2).inner_text() == f"v{challenged}"  # the challenger
    canary = lightgbm.locator("td[data-canary]").inner_text()
    assert canary == f"v{challenged} serves 25% (CANARY_SHARE)"

    # Drift: the drifted input's cell carries the flag in words, not only in colour.
    # (With a canary each version that served rows has an article: the champion's here.)
    drift = page.locator('#drift article[data-model="lightgbm"][data-version="1"]')
    cell = drift.locator('td[data-feature="Mental Fatigue Score"][data-flag="drift"]').first
    assert cell.inner_text().startswith("■ ")
    assert "PSI" in (cell.get_attribute("title") or "")
    assert "macro F1" in drift.locator("figcaption").inner_text()
    # The challenger in shadow: agreement, prediction PSI and both scores on the same rows.
    shadow = drift.locator("[data-challenger]").first.inner_text()
    assert re.search(r"challenger v\d+ in shadow: agrees with the champion on \d+\.\d% of", shadow)
    assert re.search(r"labelled: macro F1 \d\.\d{3} against the champion's \d\.\d{3}", shadow)
    # The canary's window: the rows it served, and the champion in shadow on them.
    served = page.locator(f'#drift article[data-version="{challenged}"] [data-canary]')
    assert re.search(
        rf"canary v{challenged}, window [\d:]+: [\d,]+ records served, 0 failed \(error rate "
        r"0\.0%\) · champion v1 in shadow agrees on \d+\.\d% of [\d,]+ records",
        served.first.inner_text(),
    )

    # Predictions: the newest rows, and the model filter.
    page.select_option("#rows-model", "lightgbm")
    seen(page, "[...document.querySelectorAll('#predictions tbody tr')].length > 1 && "
               "[...document.querySelectorAll('#predictions tbody tr td:nth-child(2)')]"
               ".every((td) => td.textContent === 'lightgbm')")  # fmt: skip

    # Objects: a download through the API is the CSV itself.
    link = page.locator("#objects a[data-download]").first
    with page.expect_download() as started:
        link.click()
    saved = Path(started.value.path()).read_text()
    assert saved.startswith("message_id,record_index,model,")
    assert len(saved.splitlines()) > 1

    # Keyboard: the controls, the heat map's cells and the links are reachable with Tab alone,
    # and a focused cell's numbers show in words (a title would show on hover only).
    page.locator("body").focus()
    wanted, reached = {"pause", "TD", "rows-model", "A"}, set()
    for _ in range(400):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if wanted <= reached:
            break
    assert wanted <= reached, reached
    cell.focus()
    detail = drift.locator(".cell-detail").inner_text()
    assert "Mental Fatigue Score" in detail, detail
    assert "PSI" in detail, detail

    shots = [tmp_path / "console.png", tmp_path / "console-phone.png"]
    page.screenshot(path=shots[0], full_page=True)
    # A phone's width: one column, no sideways scrolling of the page.
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=shots[1], full_page=True)
    if keep := os.environ.get("STREAMFN_SCREENSHOT_DIR"):
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
    wider = page.evaluate(WIDER_THAN_THE_SCREEN)
    assert wider == [], "\n".join(wider)
    assert problems == []
    # The whole visit, the chart drawn and the download made, under the page's policy.
    assert page.evaluate("window.__violations") == []
