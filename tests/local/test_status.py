"""The live status of `streamfn up`: readings from a real Redis and real metrics endpoints."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from rich.console import Console

from streamfn.core.settings import Settings
from streamfn.local import status
from streamfn.local.stack import free_port

POLLER_METRICS = """\
# HELP streamfn_infer_records_total Records written to S3
# TYPE streamfn_infer_records_total counter
streamfn_infer_records_total{model="svm"} 120.0
streamfn_infer_records_total{model="knn"} 30.0
# HELP streamfn_model_loads_total Model versions loaded
# TYPE streamfn_model_loads_total counter
streamfn_model_loads_total{model="svm",version="1"} 1.0
streamfn_model_loads_total{model="svm",version="10"} 1.0
streamfn_model_loads_total{model="knn",version="2"} 1.0
# HELP streamfn_served_version The version a process serves per model, as champion or challenger
# TYPE streamfn_served_version gauge
streamfn_served_version{model="svm",role="champion"} 10.0
streamfn_served_version{model="knn",role="champion"} 2.0
streamfn_served_version{model="knn",role="challenger"} 3.0
"""
INGEST_METRICS = """\
# TYPE streamfn_ingest_records_total counter
streamfn_ingest_records_total{model="svm"} 150.0
streamfn_ingest_records_total{model="knn"} 45.0
"""


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """An HTTP server answering /ingest and /poller with fixed Prometheus text."""
    pages = {"/ingest": INGEST_METRICS, "/poller": POLLER_METRICS}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path)
            self.send_response(200 if page else 404)
            self.end_headers()
            self.wfile.write((page or "").encode())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_collect_reads_redis_and_every_endpoint(
    settings: Settings, redis_url: str, metrics_server: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.xgroup_create("mlops_stream", "workers", id="0", mkstream=True)
    for _ in range(5):
        r.xadd("mlops_stream", {"model": "svm", "data": "[]", "received_at": "1"})
    r.xreadgroup("workers", "c", {"mlops_stream": ">"}, count=2)  # 2 pending, 3 not read
    r.xadd("mlops_stream:dlq", {"model": "svm"})
    dead_poller = f"http://127.0.0.1:{free_port()}/metrics"
    now = status.collect(
        r, settings, f"{metrics_server}/ingest", [f"{metrics_server}/poller", dead_poller]
    )
    assert (now.ingested, now.processed) == (195, 150)
    assert (now.stream_length, now.lag, now.pending, now.dead_letters) == (5, 3, 2, 1)
    assert (now.pollers_up, now.pollers) == (1, 2)
    assert now.versions == {"svm": "10", "knn": "2"}  # what each serves, the challenger apart
    assert now.challengers == {"knn": "3"}
    line = status.line(now, None)
    assert "processed=150" in line
    assert "lag=3" in line
    assert "models=knn=v2,svm=v10" in line
    console = Console(width=200, record=True)
    console.print(status.render(now, None, {"API docs": "http://x/docs"}))
    text = console.export_text()
    assert "150 records written" in text
    assert "knn v2 (challenger v3), svm v10" in text
    assert "http://x/docs" in text


def test_unanswered_sources_are_unknown_not_zero(settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    now = status.collect(client, settings, f"{dead}/metrics", [f"{dead}/metrics"])
    assert (now.ingested, now.processed, now.lag, now.dead_letters) == (None, None, None, None)
    assert "ingested=? processed=?" in status.line(now, None)


def test_throughput_is_the_difference_of_two_readings() -> None:
    def at(t: float, processed: int | None) -> status.Snapshot:
        return status.Snapshot(t, 0, processed, 1, 1, 0, 0, 0, 0)

    assert at(12.0, 700).throughput(at(10.0, 100)) == 300.0
    assert at(12.0, 700).throughput(None) is None
    assert at(12.0, None).throughput(at(10.0, 100)) is None


def test_a_window_in_words_names_what_moved_and_the_challenger() -> None:
    window = {
        "flag": "drift", "records": 13_800,
        "features": {"Mental Fatigue Score": {"psi": 1.5, "flag": "drift"},
                     "Sleep Hours": {"psi": 0.01, "flag": "ok"}},
        "prediction": {"psi": 0.47}, "macro_f1": 0.545, "labelled": 13_083,
        "challengers": [{"version": "2", "agreement": 0.961, "macro_f1": 0.87,
                         "champion_macro_f1": 0.876}],
    }  # fmt: skip
    assert status.window_words(window) == (
        "drift · 13,800 records · Mental Fatigue Score PSI 1.50 · predictions PSI 0.47 · "
        "macro F1 0.545 (13,083 labelled) · challenger v2 agrees 96.1%, macro F1 0.870 against "
        "the champion's 0.876"
    )
