"""Micro-benchmark of the ingest's validation (a seed model's Validator): µs per record.

Run: .venv/bin/python benchmarks/bench_schema.py [--seconds S]
The body holds full 13-feature records with an Employee ID, keys spelt in mixed ways
(canonical, snake_case, lower case, hyphens), the way a mix of clients would send them.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import orjson

from streamfn.ingest.validation import Validator
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import FEATURES, Feature

parse_body = Validator(seed_schema()).parse_body

_SPELLERS: tuple[Callable[[str], str], ...] = (
    lambda n: n,
    lambda n: n.replace(" ", "_").replace("-", "_"),
    lambda n: n.lower(),
    lambda n: n.lower().replace(" ", "_").replace("-", "_"),
    lambda n: n.replace(" ", "-"),
)


def _value(feature: Feature, rng: random.Random) -> str | float | int:
    if feature.kind == "category":
        return rng.choice(feature.allowed)
    if feature.name == "Team Size":
        return rng.randint(1, 50)
    return round(rng.uniform(feature.low, feature.high), 2)


def make_body(n_records: int, seed: int = 7) -> bytes:
    """A JSON body of `n_records` full records with mixed key spellings."""
    rng = random.Random(seed)
    records = []
    for i in range(n_records):
        spell = _SPELLERS[i % len(_SPELLERS)]
        rec: dict[str, object] = {"Employee ID": f"emp-{i:06d}"}
        rec |= {spell(f.name): _value(f, rng) for f in FEATURES}
        records.append(rec)
    return orjson.dumps({"data": records})


def _time_per_call(fn: Callable[[], object], seconds: float) -> float:
    """Best-of-5 mean seconds per call, each round lasting about seconds/5."""
    fn()
    calls = 1
    start = time.perf_counter()
    while time.perf_counter() - start < 0.05:
        fn()
        calls += 1
    per_round = max(1, int(calls * seconds / 5 / 0.05))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = min(best, (time.perf_counter() - start) / per_round)
    return best


def main() -> None:
    """Print µs/record and records/s for 100- and 1-record bodies, and orjson's share."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    print(f"{'body':<28}{'µs/record':>12}{'records/s':>14}")
    for n in (100, 1):
        body = make_body(n)
        parse_body(body, 10_000)  # warm the key cache with this body's spellings
        for label, fn in (
            (f"parse_body, {n} record(s)", lambda b=body: parse_body(b, 10_000)),
            (f"  orjson.loads alone, {n}", lambda b=body: orjson.loads(b)),
        ):
            per_record = _time_per_call(fn, args.seconds) / n
            print(f"{label:<28}{per_record * 1e6:>12.2f}{1 / per_record:>14,.0f}")


if __name__ == "__main__":
    main()
