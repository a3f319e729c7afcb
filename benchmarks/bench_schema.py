"""Micro-benchmark of the ingest's validation (a seed model's Validator): µs per record.

Run: .venv/bin/python benchmarks/bench_schema.py [--seconds S]
The body holds full 13-feature records with an Employee ID, keys spelt in mixed ways
(canonical, snake_case, lower case, hyphens), the way a mix of clients would send them.

Then the hostile bodies under MAX_BODY_BYTES (issue 24, finding 3): what each costs to refuse,
in CPU seconds, against a valid body of MAX_RECORDS records. A refusal must cost no more than
that valid body: a client that sends refused bodies gains no leverage on the ingest's CPU.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import orjson

from streamfn.api.responses import BodyError
from streamfn.core.settings import Settings
from streamfn.ingest.validation import Validator
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import FEATURES, Feature

parse_body = Validator(seed_schema()).parse_body
MAX_RECORDS = Settings.model_fields["MAX_RECORDS"].default
MAX_BODY_BYTES = Settings.model_fields["MAX_BODY_BYTES"].default

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


def _body(*records: object) -> bytes:
    return orjson.dumps({"data": list(records)})


def _largest(make: Callable[[int], bytes], low: int, high: int) -> bytes:
    """make(n) for the largest n in [low, high] whose body is within MAX_BODY_BYTES."""
    best = make(low)
    while low < high:
        middle = (low + high + 1) // 2
        body = make(middle)
        if len(body) <= MAX_BODY_BYTES:
            low, best = middle, body
        else:
            high = middle - 1
    return best


def _near_misses(n: int) -> dict[str, int]:
    # Keys about a column name's length that pass difflib's quick filters: the costly kind.
    names = [f.name for f in FEATURES]
    return {f"{names[i % len(names)]}{i:06d}": 0 for i in range(n)}


def _nested(n: int) -> bytes:
    record = '{"Sleep Hours":' + "[" * 1000 + "]" * 1000 + "}"
    return ('{"data":[' + ",".join([record] * n) + "]}").encode()


# The worst bodies found (issue 24's research): one record of many keys, keys that fold to a
# column, one huge key, deep arrays, and the largest of each just under the pre-scan's bound.
HOSTILE: dict[str, Callable[[], bytes]] = {
    "1 record, 30,000 unknown keys (the issue's)": lambda: _body(_near_misses(30_000)),
    "1 record, unknown keys up to 5 MiB": lambda: _largest(
        lambda n: _body(_near_misses(n)), 1_000, 400_000),
    "1 record, 171,000 short keys (pre-scan bound)": lambda: _body(
        {f"{i:x}": 0 for i in range(171_000)}),
    "1 record, one 5 MiB key": lambda: _largest(lambda n: _body({"k" * n: 1}), 1_000,
                                                  MAX_BODY_BYTES),
    "records of 1000-deep arrays, up to 5 MiB": lambda: _largest(_nested, 1, 10_000),
    "40 records of 1000-deep arrays (pre-scan bound)": lambda: _nested(40),
    "records of 30 unknown keys, up to 5 MiB": lambda: _largest(
        lambda n: _body(*[_near_misses(30)] * n), 10, 10_000),
}  # fmt: skip


def _cpu_s(body: bytes) -> tuple[float, str]:
    """Best-of-3 CPU seconds of parse_body on a body, and its answer."""
    best, answer = float("inf"), ""
    for _ in range(3):
        start = time.process_time()
        try:
            answer = f"202: {len(parse_body(body, MAX_RECORDS))} records"
        except BodyError as error:
            answer = f"{error.status} {error.errors[0]['type']}"
        best = min(best, time.process_time() - start)
    return best, answer


def hostile() -> None:
    """Print what each hostile body costs to refuse, beside a valid MAX_RECORDS body."""
    valid = make_body(MAX_RECORDS)
    parse_body(valid, MAX_RECORDS)  # warm the key cache, as a running ingest's is
    valid_s, _ = _cpu_s(valid)
    print(f"\n{'body':<48}{'bytes':>10}{'CPU s':>9}  answer")
    print(f"{f'valid, {MAX_RECORDS:,} full records':<48}{len(valid):>10,}{valid_s:>9.4f}  202")
    worst = 0.0
    for name, make in HOSTILE.items():
        body = make()
        spent, answer = _cpu_s(body)
        worst = max(worst, spent)
        print(f"{name:<48}{len(body):>10,}{spent:>9.4f}  {answer}")
    print(f"worst refused body: {worst:.4f} s vs valid {MAX_RECORDS:,}-record body: "
          f"{valid_s:.4f} s (CPU)")  # fmt: skip


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
    """Print µs/record and records/s for 100- and 1-record bodies, and orjson's share; then the
    hostile bodies."""
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
    hostile()


if __name__ == "__main__":
    main()
