"""Closing windows: once a window is MONITOR_WINDOW_S past its end, its counts are final (no
message of it is still in flight but a redelivery, counted with its done record anyway). The
infer function writes its statistics once to the bucket (`streamfn.sink.layout.window_key`), sets
the Prometheus gauges, and logs a line when it is flagged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from streamfn.core import metrics
from streamfn.core.connections import SyncClient
from streamfn.core.keys import Keys
from streamfn.monitor import stats
from streamfn.sink.bucket import Bucket, BucketUnavailableError
from streamfn.sink.layout import WINDOW_CONTENT_TYPE, window_key

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
LOCK_S = 30  # a closer that died mid-way leaves the window to another after this
BATCH = 50

Profiles = Callable[[str, str], dict[str, Any] | None]  # (model, version) -> reference profile


class WindowCloser:
    """Writes each window's statistics once it is closed; at most every CHECK_EVERY_S."""

    def __init__(
        self, redis: SyncClient, keys: Keys, bucket: Bucket, profiles: Profiles, window_s: float,
        min_records: int, drift_psi: float, attribution_ndcg: float = stats.ATTRIBUTION_NDCG,
    ) -> None:  # fmt: skip
        self.redis = redis
        self.keys = keys
        self.bucket = bucket
        self.profiles = profiles
        self.window_s = window_s
        self.min_records = min_records
        self.drift_psi = drift_psi
        self.attribution_ndcg = attribution_ndcg
        self._next_check = 0.0

    def maybe_close(self, now_s: float | None = None) -> int:
        """Close every window that is due; how many this call closed."""
        clock = time.monotonic()
        if clock < self._next_check:
            return 0
        self._next_check = clock + CHECK_EVERY_S
        now_s = time.time() if now_s is None else now_s
        due = self.redis.zrangebyscore(
            self.keys.open_windows(), "-inf", now_s - 2 * self.window_s, 0, BATCH
        )
        closed = 0
        for member in due:
            model, version, start = member.decode().rsplit(":", 2)
            if self.redis.set(self.keys.window_lock(member.decode()), 1, nx=True, ex=LOCK_S):
                try:
                    self.close(model, version, int(start))
                except BucketUnavailableError as error:
                    log.warning("window not written; retried later",
                                extra={"model": model, "window_start": int(start),
                                       "error": str(error)})  # fmt: skip
                    continue
                self.redis.zrem(self.keys.open_windows(), member)
                closed += 1
        return closed

    def close(self, model: str, version: str, start: int) -> dict[str, Any]:
        """Write one window's statistics (idempotent: the same key and content), report it."""
        raw = self.redis.hgetall(self.keys.window(model, version, start))
        counts = {k.decode(): int(v) for k, v in raw.items()}
        challengers = {v: self.profiles(model, v) for v in stats.challenger_versions(counts)}
        profile = self.profiles(model, version)
        report = stats.window_report(counts, profile, self.min_records, self.drift_psi,
                                     challengers, self.attribution_ndcg)  # fmt: skip
        end = start + int(self.window_s)
        document = {"model": model, "version": version, "window_start": start,
                    "window_end": end, **report, "counts": counts}  # fmt: skip
        self.bucket.put(
            window_key(model, version, start), orjson.dumps(document), WINDOW_CONTENT_TYPE
        )
        publish(document)
        return document


def publish(window: dict[str, Any]) -> None:
    """The window's gauges, and for a flagged window a counter and one log line."""
    model, version = window["model"], window["version"]
    for name, feature in window["features"].items():
        metrics.FEATURE_PSI.labels(model, version, name).set(feature["psi"])
    if window["prediction"]["psi"] is not None:
        metrics.PREDICTION_PSI.labels(model, version).set(window["prediction"]["psi"])
    if window["macro_f1"] is not None:
        metrics.LIVE_MACRO_F1.labels(model, version).set(window["macro_f1"])
    if window.get("estimated_macro_f1") is not None:
        metrics.ESTIMATED_MACRO_F1.labels(model, version).set(window["estimated_macro_f1"])
        metrics.ESTIMATED_ACCURACY.labels(model, version).set(window["estimated_accuracy"])
    attribution = window.get("attribution")
    if attribution and attribution["ndcg"] is not None:
        metrics.ATTRIBUTION_NDCG.labels(model, version).set(attribution["ndcg"])
    for challenger in window.get("challengers", []):
        if challenger.get("in_shadow") == "champion":  # a canary's window: no challenger there
            continue
        other = challenger["version"]
        if challenger["agreement"] is not None:
            metrics.SHADOW_AGREEMENT.labels(model, version, other).set(challenger["agreement"])
        if challenger["prediction"]["psi"] is not None:
            psi = challenger["prediction"]["psi"]
            metrics.CHALLENGER_PREDICTION_PSI.labels(model, other).set(psi)
        if challenger["macro_f1"] is not None:
            metrics.CHALLENGER_MACRO_F1.labels(model, other).set(challenger["macro_f1"])
    if window["flag"] in ("warn", "drift"):
        metrics.FLAGGED_WINDOWS.labels(model, version, window["flag"]).inc()
        drifted = sorted(n for n, f in window["features"].items() if f["flag"] != "ok")
        log.warning("window flagged", extra={
            "model": model, "version": version, "window_start": window["window_start"],
            "flag": window["flag"], "records": window["records"], "features": drifted,
            "prediction_psi": window["prediction"]["psi"],
        })  # fmt: skip
