"""The canary's cost alone, as `streamfn bench` measures it: LightGBM at 100 records/request
through the whole pipeline with a 25% canary (the challenger serves a quarter, the champion
scores that quarter in shadow, the challenger the rest) against no challenger, and beside it a
challenger in shadow alone against none; fresh stacks, each the best of two alternated runs.

Run: .venv/bin/python -m benchmarks.bench_canary [--tracking-uri URI] [--seconds 10]
(without --tracking-uri: trains LightGBM and its challenger into a SQLite store under --out).
Needs wrk. Prints the two Targets rows of the report.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rich.console import Console

from streamfn.bench import cost_rows, costs
from streamfn.bench.load import require_wrk
from streamfn.bench.run import Bench, Options
from streamfn.cli.common import old_spelling


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tracking = parser.add_argument(
        "--tracking-uri", metavar="URI", help="an MLflow tracking URI with the models"
    )
    old_spelling(parser, "--registry", tracking)
    parser.add_argument("--seconds", type=float, default=10.0, help="per load run (default 10)")
    parser.add_argument("--out", type=Path, default=Path(".streamfn/bench-canary"))
    args = parser.parse_args()
    require_wrk()
    logging.disable(logging.WARNING)
    # quick: LightGBM alone (the only model measured here); the runs last --seconds all the same
    options = Options(args.out, args.tracking_uri, quick=True, seconds=args.seconds)
    bench = Bench(options, Console(stderr=True))
    bench.work.mkdir(parents=True, exist_ok=True)
    registry = bench.registry()
    costs.challenger(bench, registry)
    costs.canary(bench, registry)
    found = bench.findings
    for name, value, met in (cost_rows.shadow_row(found.challenger),
                             cost_rows.canary_row(found.canary, found.challenger)):  # fmt: skip
        print(f"| {name} | {value} | {'met' if met else 'missed' if met is False else '—'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
