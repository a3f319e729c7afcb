"""Compiled inference per seed model, in process: what PREDICT_RUNTIME=auto serves and why, the
parity figures of each version's report, and the floor (inputs + predict + CSV, the infer
function's own code) at 1, 100 and 1,000 records natively and under ONNX Runtime, each the best
of two alternated runs.

Run: .venv/bin/python -m benchmarks.bench_compiled [--tracking-uri URI] [--seconds S]
(without --tracking-uri: trains and compiles the three models into a temporary SQLite store, about
two minutes). Prints Markdown.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from streamfn.bench import compiled
from streamfn.cli.common import old_spelling
from streamfn.core.settings import SEED_MODELS
from streamfn.data import training
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.models.cache import ModelCache

SIZES = (1, 100, 1000)


def floors(registry: str, seconds: float) -> list[str]:
    """Markdown rows: the floor p50 per model and size, native against ONNX Runtime."""
    records = RecordSampler(load_profile(), seed=11).records(max(SIZES))
    caches = {runtime: ModelCache(registry, "champion", 3600, SEED_MODELS, runtime=runtime)
              for runtime in ("native", "onnx")}  # fmt: skip
    lines = ["| model | records | native p50 ms | ONNX Runtime p50 ms | native ÷ ONNX |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for model in SEED_MODELS:
        loaded = {runtime: cache.get(model) for runtime, cache in caches.items()}
        if loaded["onnx"].runtime_name != "onnx":
            lines.append(f"| {model} | — | — | — | no graph may serve: "
                         f"{loaded['onnx'].choice.reason} |")  # fmt: skip
            continue
        for size in SIZES:
            best = compiled.best_p50(loaded, records[:size], seconds)
            lines.append(f"| {model} | {size:,} | {best['native']:.3f} | {best['onnx']:.3f} | "
                         f"{best['native'] / best['onnx']:.1f} x |")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tracking = parser.add_argument(
        "--tracking-uri", metavar="URI", help="an MLflow tracking URI with the three models"
    )
    old_spelling(parser, "--registry", tracking)
    parser.add_argument("--seconds", type=float, default=1.0, help="per floor measurement")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # mlflow's chatter; the tables are the output
    with tempfile.TemporaryDirectory(prefix="bench-compiled-") as directory:
        registry = args.tracking_uri or f"sqlite:///{Path(directory) / 'mlflow.db'}"
        if args.tracking_uri is None:
            training.train(registry, "champion")
        compiled.compile_missing(registry, tuple(SEED_MODELS), print)
        records = RecordSampler(load_profile(), seed=11).records(1)
        found = compiled.measure(registry, tuple(SEED_MODELS), records, args.seconds)
        print("\n".join(["## What auto serves, and the parity figures", "",
                         *compiled.table(found), "",
                         "## The in-process floor (inputs + predict + CSV), best of two", "",
                         *floors(registry, args.seconds)]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
