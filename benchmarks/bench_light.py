"""Light traffic, native against compiled: 20 requests/s of one record through the whole pipeline
(wrk -> ingest -> Redis Stream -> one poller -> infer -> moto's S3), acceptance to object p50 and
p99, with PREDICT_RUNTIME=native and =auto on fresh stacks, alternated, best of two each; and how
long moto's PUT of such an object takes on its own (part of every message's latency).

Run: .venv/bin/python -m benchmarks.bench_light [--tracking-uri URI] [--model lightgbm]
[--seconds 15] (without --tracking-uri: trains and compiles the models into a temporary SQLite
store). Needs wrk.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from streamfn.bench import pipeline
from streamfn.bench.load import require_wrk
from streamfn.cli.common import old_spelling
from streamfn.core.settings import SEED_MODELS, load_settings
from streamfn.data import training
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.sink.bucket import Bucket

REQUESTS_PER_S = 20.0
PUTS = 200


def put_ms(bench: pipeline.PipelineStack, body: bytes) -> tuple[float, float]:
    """p50 and p99 of one PutObject of `body` to the stack's S3 server, alone."""
    bucket = Bucket.from_settings(load_settings(**bench.env))
    durations = []
    for i in range(PUTS):
        started = time.perf_counter()
        bucket.put(f"bench/put-{i}.csv", body, "text/csv; charset=utf-8", {"model-runtime": "x"})
        durations.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(durations, 50)), float(np.percentile(durations, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tracking = parser.add_argument(
        "--tracking-uri", metavar="URI", help="an MLflow tracking URI with the models"
    )
    old_spelling(parser, "--registry", tracking)
    parser.add_argument("--model", default="lightgbm", choices=list(SEED_MODELS))
    parser.add_argument("--seconds", type=float, default=15.0, help="per run (300 messages)")
    args = parser.parse_args()
    require_wrk()
    logging.disable(logging.WARNING)
    records = RecordSampler(load_profile(), seed=11).records(1)
    best: dict[str, tuple[float, float, int]] = {}
    puts: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-light-") as directory:
        work = Path(directory)
        registry = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
        if args.tracking_uri is None:
            training.train(registry, "champion", (args.model,))
        models = f"{args.model}={SEED_MODELS[args.model]}"
        for round_ in range(2):
            for runtime in ("native", "auto"):
                env = {"PREDICT_RUNTIME": runtime, "MODELS": models}
                with pipeline.pipeline(work / f"{runtime}-{round_}", registry, 1, 5000,
                                       **env) as bench:  # fmt: skip
                    pipeline.warm_up(bench, args.model, records, work)
                    point = pipeline.latency_at(bench, args.model, records, REQUESTS_PER_S,
                                                args.seconds, 1, work)  # fmt: skip
                    if runtime == "auto" and round_ == 1:
                        puts.append(put_ms(bench, b"x" * 600))  # a one-record CSV's size
                said = f"p50 {point.p50_ms:.1f} ms, p99 {point.p99_ms:.1f} ms"
                print(f"round {round_ + 1}, PREDICT_RUNTIME={runtime}: {said}, "
                      f"{point.messages} messages", flush=True)  # fmt: skip
                kept = best.get(runtime)
                if kept is None or point.p50_ms < kept[0]:
                    best[runtime] = (point.p50_ms, point.p99_ms, point.messages)
    print(f"\n| {args.model}, {REQUESTS_PER_S:g} requests/s of 1 record | p50 ms | p99 ms | "
          "messages |\n|---|---:|---:|---:|")  # fmt: skip
    for runtime, (p50, p99, messages) in best.items():
        print(f"| PREDICT_RUNTIME={runtime} (best of two by p50) | {p50:.1f} | {p99:.1f} | "
              f"{messages} |")  # fmt: skip
    ((p50, p99),) = puts
    print(f"\nmoto's PutObject of a 600-byte object, alone ({PUTS} in a row): p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
