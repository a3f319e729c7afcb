"""Security headers on every answer, and the docs page served from the package."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from streamfn.api.headers import DATA_CSP, PAGE_CSP
from streamfn.app import create_app
from streamfn.core.settings import Settings
from tests.factories import SEED_EXAMPLE

PAGES = ["/docs", "/docs/static/docs.js", "/docs/static/vendor/swagger-ui-bundle.js",
         "/docs/static/vendor/swagger-ui.css", "/ui", "/ui/static/console.js",
         "/ui/static/vendor/uPlot.iife.min.js"]  # fmt: skip


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", PAGES)
def test_pages_and_their_files_may_load_from_this_origin_only(
    client: TestClient, path: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-security-policy"] == PAGE_CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cross-origin-opener-policy"] == "same-origin"


def test_data_is_never_framed_sniffed_or_cached(client: TestClient) -> None:
    accepted = client.post("/predict_stream?model=svm", content=orjson.dumps(SEED_EXAMPLE),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    status_url = accepted.json()["status_url"]
    for answer in (accepted, client.get(status_url), client.get("/health"),
                   client.get("/ui/api/status"), client.get("/no/such/route")):  # fmt: skip
        assert answer.headers["content-security-policy"] == DATA_CSP, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
        assert answer.headers["x-frame-options"] == "DENY", answer.url
        assert answer.headers["cache-control"] == "no-store", answer.url


def test_the_docs_page_loads_nothing_from_another_origin(client: TestClient) -> None:
    page = client.get("/docs").text
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources, page
    assert [s for s in sources if "//" in s or s.startswith("/")] == []  # relative: this origin
    # Nothing inline for the policy to allow.
    assert "<script>" not in page
    assert "style=" not in page
    for source in sources:
        assert client.get(f"/{source}").status_code == 200, source
