"""The live status of a running pipeline, read from Redis and the processes' Prometheus metrics.

One `Snapshot` is a reading at one instant; the throughput is the difference of two readings.
Every source is optional: a process that does not answer shows as unknown, never as zero.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import RedisError, ResponseError
from rich.table import Table

from streamfn.api.auth import client_headers
from streamfn.core import metrics
from streamfn.core.connections import SyncClient, text
from streamfn.core.keys import dlq_key
from streamfn.core.settings import Settings

METRICS_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Snapshot:
    """The pipeline's counts at one instant (None: the source did not answer)."""

    at: float
    ingested: int | None  # records accepted by the ingest process since it started
    processed: int | None  # records written to S3 by the pollers since they started
    pollers_up: int
    pollers: int
    stream_length: int | None
    lag: int | None
    pending: int | None
    dead_letters: int | None
    versions: dict[str, str] = field(default_factory=dict)  # model -> champion version served
    challengers: dict[str, str] = field(default_factory=dict)  # model -> challenger in shadow
    drift: dict[str, str] = field(default_factory=dict)  # model -> its newest window, in words

    def throughput(self, before: Snapshot | None) -> float | None:
        """Records written per second since an earlier snapshot."""
        if before is None or self.processed is None or before.processed is None:
            return None
        seconds = self.at - before.at
        return (self.processed - before.processed) / seconds if seconds > 0 else None


def scrape(
    url: str, headers: dict[str, str] | None = None
) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    """The samples of a Prometheus endpoint by sample name, or None when it does not answer."""
    try:
        answer = httpx.get(url, headers=headers, timeout=METRICS_TIMEOUT_S)
        answer.raise_for_status()
    except httpx.HTTPError:
        return None
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(scrapes: Iterable[dict[str, list[tuple[dict[str, str], float]]]], name: str) -> int:
    """The sum of one sample over every scrape and label set."""
    return int(sum(value for scraped in scrapes for _, value in scraped.get(name, [])))


def served_versions(
    scrapes: Iterable[dict[str, list[tuple[dict[str, str], float]]]], role: str
) -> dict[str, str]:
    """Per model, the version the pollers serve in a role (the highest, while they differ)."""
    versions: dict[str, int] = {}
    for scraped in scrapes:
        for labels, value in scraped.get(metrics.sample_name(metrics.SERVED_VERSION), []):
            if labels.get("role") == role:
                model = labels.get("model", "?")
                versions[model] = max(versions.get(model, 0), int(value))
    return {model: str(version) for model, version in versions.items()}


def read_stream(client: SyncClient, settings: Settings) -> tuple[int | None, ...]:
    """Length, group lag, pending entries and dead letters of the stream, summed over its
    partitions (None: unknown)."""
    streams = settings.keys.streams  # none when the stream is not Redis's (Kinesis, SQS)
    if not streams:
        return None, None, None, None  # the service's depth is the service's to tell
    totals: list[int | None] = [0, 0, 0, 0]
    for stream in streams:
        try:
            length = client.xlen(stream)
            dead = client.xlen(dlq_key(stream))
            try:
                groups = client.xinfo_groups(stream)
            except ResponseError:  # no stream yet
                groups = []
        except RedisError:
            return None, None, None, None
        group = next((g for g in groups if text(g["name"]) == settings.CONSUMER_GROUP), None)
        if group is None:  # nothing read yet: all of it is lag
            lag: int | None = length
        elif group.get("lag") is None:  # Redis 6.2, or a lag Redis cannot compute
            lag = None
        else:  # the length bounds a lag Redis overstates after an AOF reload (redis/redis#10569)
            lag = min(group["lag"], length)
        pending = 0 if group is None else group["pending"]
        totals = [None if t is None or v is None else t + v
                  for t, v in zip(totals, (length, lag, pending, dead), strict=True)]  # fmt: skip
    return tuple(totals)


def drift_lines(ingest_url: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Per model, its newest window in words: flag, records, the inputs that drift, accuracy."""
    try:
        answer = httpx.get(f"{ingest_url}/monitoring", params={"windows": 1}, headers=headers,
                           timeout=METRICS_TIMEOUT_S)  # fmt: skip
        answer.raise_for_status()
    except httpx.HTTPError:
        return {}
    return {window["model"]: window_words(window) for window in answer.json()["windows"]}


def window_words(window: dict[str, Any]) -> str:
    """A window in words: flag, records, the inputs that drift, accuracy, and a challenger's
    agreement with the champion and both scores."""
    moved = sorted(((f["psi"], n) for n, f in window["features"].items() if f["flag"] != "ok"),
                   reverse=True)  # fmt: skip
    words = f"{window['flag']} · {window['records']:,} records"
    if moved:
        words += " · " + ", ".join(f"{n} PSI {p:.2f}" for p, n in moved[:3])
    if window["prediction"]["psi"] is not None:
        words += f" · predictions PSI {window['prediction']['psi']:.2f}"
    if window["macro_f1"] is not None:
        words += f" · macro F1 {window['macro_f1']:.3f} ({window['labelled']:,} labelled)"
    for challenger in window.get("challengers", []):
        if challenger["agreement"] is None:
            continue
        words += f" · challenger v{challenger['version']} agrees {challenger['agreement']:.1%}"
        if challenger["macro_f1"] is not None:
            words += (f", macro F1 {challenger['macro_f1']:.3f} against the champion's "
                      f"{challenger['champion_macro_f1']:.3f}")  # fmt: skip
    return words


def collect(
    client: SyncClient, settings: Settings, ingest_metrics: str, poller_metrics: Sequence[str]
) -> Snapshot:
    """Read everything once (the ingest's routes with INGEST_API_KEY, when set)."""
    keyed = client_headers(settings.INGEST_API_KEY)
    ingest = scrape(ingest_metrics, keyed)
    pollers = [s for s in (scrape(url) for url in poller_metrics) if s is not None]
    length, lag, pending, dead = read_stream(client, settings)
    return Snapshot(
        at=time.monotonic(),
        ingested=total([ingest], metrics.sample_name(metrics.INGEST_RECORDS)) if ingest else None,
        processed=total(pollers, metrics.sample_name(metrics.INFER_RECORDS)) if pollers else None,
        pollers_up=len(pollers),
        pollers=len(poller_metrics),
        stream_length=length,
        lag=lag,
        pending=pending,
        dead_letters=dead,
        versions=served_versions(pollers, "champion"),
        challengers=served_versions(pollers, "challenger"),
        drift=drift_lines(ingest_metrics.removesuffix("/metrics"), keyed) if ingest else {},
    )


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def render(now: Snapshot, before: Snapshot | None, links: dict[str, str]) -> Table:
    """The status panel: counts, throughput, model versions, and where to look."""
    table = Table(title="streamfn up", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rate = now.throughput(before)
    versions = (
        ", ".join(
            f"{m} v{v}" + (f" (challenger v{now.challengers[m]})" if m in now.challengers else "")
            for m, v in sorted(now.versions.items())
        )
        or "none loaded yet"
    )
    rows = [
        ("ingested", f"{_count(now.ingested)} records"),
        ("processed", f"{_count(now.processed)} records written to S3"),
        ("throughput", "?" if rate is None else f"{rate:,.0f} records/s"),
        ("lag", f"{_count(now.lag)} entries not yet read"),
        ("pending", f"{_count(now.pending)} entries read, not yet acknowledged"),
        ("dead letters", _count(now.dead_letters)),
        ("pollers", f"{now.pollers_up} of {now.pollers} answering"),
        ("models", versions),
        *((f"drift {model}", words) for model, words in sorted(now.drift.items())),
        *links.items(),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def line(now: Snapshot, before: Snapshot | None) -> str:
    """The status as one line, for a log or a terminal that cannot redraw."""
    rate = now.throughput(before)
    versions = ",".join(f"{m}=v{v}" for m, v in sorted(now.versions.items())) or "-"
    return (
        f"status: ingested={_count(now.ingested)} processed={_count(now.processed)} "
        f"records_per_s={'?' if rate is None else f'{rate:.0f}'} lag={_count(now.lag)} "
        f"pending={_count(now.pending)} dead_letters={_count(now.dead_letters)} "
        f"pollers={now.pollers_up}/{now.pollers} models={versions}"
    )
