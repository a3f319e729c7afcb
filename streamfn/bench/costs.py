"""What a feature costs the pipeline: LightGBM at 100 records/request with it and without, on a
fresh stack each run, each the best of two runs alternated (so that the machine's drift does not
pose as a cost): monitoring, the sink's format, estimated performance, reason codes, a
challenger in shadow (and a broken one), a 25% canary, and what is measured on the way (the
console's refreshes, a backtest of the rows written)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import httpx

from streamfn.bench import challengers, console_cost, floor, pipeline
from streamfn.bench.pipeline import CONNECTIONS, FLOOR_SIZES, MAX_LAG
from streamfn.core.settings import SEED_MODELS, load_settings
from streamfn.models.cache import ModelCache
from streamfn.models.loaded import LoadedModel
from streamfn.sink.bucket import Bucket
from streamfn.sink.layout import PREDICTIONS, prefix

if TYPE_CHECKING:
    from streamfn.bench.run import Bench

SIZE = 100  # records per request
MODEL = "lightgbm"


class Run:
    """One run of a variant: its stack, its records/s and the ingest's cores during the load."""

    def __init__(self, name: str, round_: int, stack: pipeline.PipelineStack) -> None:
        self.name, self.round, self.stack = name, round_, stack
        self.rate = self.ingest_cores = 0.0


During = Callable[[Run], None]  # called inside each run, once its load is measured


def best_of_alternated(
    bench: Bench, registry: str, feature: str, variants: Mapping[str, Mapping[str, str]],
    during: During | None = None,
) -> dict[str, float]:  # fmt: skip
    """Each variant's (its extra variables') best records/s of two runs, run in turn."""
    records, best = bench.records[:SIZE], dict.fromkeys(variants, 0.0)
    for round_ in range(2):
        for name, extra in variants.items():
            workdir = bench.work / f"{feature}-{name}-{round_}"  # a fresh stack each run
            with pipeline.pipeline(workdir, registry, bench.options.pollers, MAX_LAG[SIZE],
                                   **extra) as stack:  # fmt: skip
                pipeline.warm_up(stack, MODEL, records, bench.work)
                run = Run(name, round_, stack)
                meter = console_cost.CpuMeter(stack.ingest_pid())
                meter.start()
                run.rate = pipeline.throughput(stack, MODEL, records, bench.options.load_seconds,
                                               CONNECTIONS[SIZE], bench.work)  # fmt: skip
                run.ingest_cores = meter.stop()
                if during is not None:
                    during(run)
            best[name] = max(best[name], run.rate)
    return best


def cost(best: dict[str, float], feature: str, without: str) -> float:
    """The share of the records/s a feature costs (negative: faster with it)."""
    return 1 - best[feature] / best[without] if best[without] else float("nan")


def monitoring(bench: Bench, registry: str) -> None:
    """Monitoring on against off; the console's cost in the last run with it on."""
    bench.say("(b) the pipeline with monitoring on and off, lightgbm, 100 records/request")

    def during(run: Run) -> None:
        if run.name == "on" and run.round == 1:
            console(bench, run.stack, run.ingest_cores)

    variants = {"on": {}, "off": {"MONITOR_WINDOW_S": "0"}}
    best = best_of_alternated(bench, registry, "monitoring", variants, during)
    bench.findings.monitoring = best
    bench.say(f"  monitoring on {best['on']:,.0f}, off {best['off']:,.0f} records/s: "
              f"{cost(best, 'on', 'off'):+.1%} of the throughput")  # fmt: skip


def sink_formats(bench: Bench, registry: str) -> None:
    """SINK_FORMAT=parquet against csv, and the bytes a row takes in each."""
    bench.say("(b) the pipeline writing Parquet and CSV, lightgbm, 100 records/request")
    sizes: dict[str, float] = {}

    def during(run: Run) -> None:
        sizes[run.name] = bytes_per_row(run.stack)

    variants = {name: {"SINK_FORMAT": name} for name in ("csv", "parquet")}
    best = best_of_alternated(bench, registry, "sink", variants, during)
    bench.findings.sink = {**best, **{f"{name}_bytes_per_row": b for name, b in sizes.items()}}
    bench.say(f"  parquet {best['parquet']:,.0f}, csv {best['csv']:,.0f} records/s "
              f"({cost(best, 'parquet', 'csv'):+.1%}); {sizes['parquet']:.1f} against "
              f"{sizes['csv']:.1f} bytes a row")  # fmt: skip


def estimation(bench: Bench, registry: str) -> None:
    """Estimated performance on (the version's calibrated probabilities and expected cells in
    each window) against off, with monitoring on in both."""
    bench.say("(b) the pipeline estimating performance and not, lightgbm, 100 records/request")
    variants = {"on": {}, "off": {"ESTIMATE_PERFORMANCE": "false"}}
    best = best_of_alternated(bench, registry, "estimation", variants)
    bench.findings.estimation = best
    bench.say(f"  estimating {best['on']:,.0f}, not {best['off']:,.0f} records/s: "
              f"{cost(best, 'on', 'off'):+.1%} of the throughput")  # fmt: skip


def explanations(bench: Bench, registry: str) -> None:
    """Three reason codes a row for every message and for a tenth of them, against none."""
    bench.say("(b) the pipeline with reason codes for all messages, a tenth and none, lightgbm")
    variants = {"none": {}, **{f"share {share}": {"OUTPUT_EXPLANATIONS": "3",
                                                  "EXPLAIN_SHARE": share}
                               for share in ("1", "0.1")}}  # fmt: skip
    best = best_of_alternated(bench, registry, "explanations", variants)
    bench.findings.explanations = best
    bench.say(f"  every message {best['share 1']:,.0f} ({cost(best, 'share 1', 'none'):+.1%}), "
              f"a tenth {best['share 0.1']:,.0f} ({cost(best, 'share 0.1', 'none'):+.1%}), "
              f"none {best['none']:,.0f} records/s")  # fmt: skip


def bytes_per_row(stack: pipeline.PipelineStack) -> float:
    """The bucket's prediction objects' bytes per row written."""
    settings = stack.settings
    objects = Bucket.from_settings(settings).list_objects(prefix(PREDICTIONS))
    rows = int(stack.redis.hget(settings.keys.totals(), "written") or 0)
    return sum(o["size"] for o in objects) / rows if rows else float("nan")


def challenger(bench: Bench, registry: str) -> None:
    """A challenger in shadow (more trees; SHADOW_SHARE 1, every record scored twice), a broken
    one (its artifacts gone) and none; the p99 at one rate with the broken one and with none; a
    backtest of the rows written without; and beside them the working challenger's own
    in-process cost (frame + predict + CSV, 1,000 records a call), which shadow scoring should
    not exceed."""
    bench.say("(b) the pipeline with a challenger in shadow, a broken one and none, lightgbm")
    version, gone = challengers.working(registry), challengers.broken(registry)
    alone = ModelCache(registry, challengers.WORKING, 3600, {MODEL: SEED_MODELS[MODEL]})
    candidate = alone.get(MODEL)
    records, best_off = bench.records[:SIZE], {"off": 0.0}

    def during(run: Run) -> None:
        if run.name == "off":
            best_off["off"] = max(best_off["off"], run.rate)
        if run.round == 1 and run.name != "on":  # one rate for both: half of none's best
            point = pipeline.latency_at(
                run.stack, MODEL, records, best_off["off"] / 2 / len(records),
                bench.options.load_seconds, CONNECTIONS[SIZE], bench.work,
            )  # fmt: skip
            bench.findings.challenger[f"p99_{run.name}"] = point.p99_ms
        if run.name == "off" and run.round == 1:
            backtest(bench, run.stack, candidate, run.rate)

    variants = {"on": {"CHALLENGER_ALIAS": challengers.WORKING}, "off": {},
                "broken": {"CHALLENGER_ALIAS": challengers.BROKEN}}  # fmt: skip
    best = best_of_alternated(bench, registry, "challenger", variants, during)
    # Its own cost at the floor's largest call: the pipeline predicts whole batches (up to
    # 25,600 records a call at this load), where per-call overhead no longer counts.
    own = floor.measure(candidate, bench.records[: FLOOR_SIZES[-1]],
                        bench.options.load_seconds / 3)  # fmt: skip
    bench.findings.challenger |= {**best, "floor": own.records_per_s}
    bench.say(f"  challenger v{version} in shadow {best['on']:,.0f}, broken v{gone} "
              f"{best['broken']:,.0f}, none {best['off']:,.0f} records/s; its own floor "
              f"{own.records_per_s:,.0f} records/s")  # fmt: skip


CANARY_SHARE = 0.25


def canary(bench: Bench, registry: str) -> None:
    """A 25% canary (the working challenger serves a quarter of the messages and scores the
    rest in shadow, the champion scores its quarter in shadow) against no challenger at all;
    the share its rows really took of the run's, from the window counts."""
    bench.say(f"(b) the pipeline with a {CANARY_SHARE:.0%} canary and none, lightgbm, "
              "100 records/request")  # fmt: skip
    version = challengers.working(registry)
    served: dict[str, float] = {}

    def during(run: Run) -> None:
        if run.name == "canary":
            served["share"] = served_share(run.stack, version)

    variants = {"canary": {"CHALLENGER_ALIAS": challengers.WORKING,
                           "CANARY_SHARE": str(CANARY_SHARE)}, "none": {}}  # fmt: skip
    best = best_of_alternated(bench, registry, "canary", variants, during)
    bench.findings.canary = {**best, "served_share": served.get("share", float("nan"))}
    bench.say(f"  canary v{version} at {CANARY_SHARE:.0%} {best['canary']:,.0f}, none "
              f"{best['none']:,.0f} records/s: {cost(best, 'canary', 'none'):+.1%}; it served "
              f"{served.get('share', float('nan')):.1%} of the rows")  # fmt: skip


def served_share(stack: pipeline.PipelineStack, version: str) -> float:
    """The share of the model's rows `version` served, from every window's record counts."""
    keys, redis = stack.settings.keys, stack.redis
    by_version: dict[str, int] = {}
    for member in redis.zrange(keys.window_index(MODEL), 0, -1):
        served, start = member.decode().rsplit(":", 1)
        rows = int(redis.hget(keys.window(MODEL, served, int(start)), "records") or 0)
        by_version[served] = by_version.get(served, 0) + rows
    total = sum(by_version.values())
    return by_version.get(version, 0) / total if total else float("nan")


def backtest(
    bench: Bench, stack: pipeline.PipelineStack, candidate: LoadedModel, written_per_s: float
) -> None:
    """`streamfn backtest`'s work on the rows a pipeline run just wrote, against the records/s
    at which that run wrote them."""
    from streamfn.challenger import backtest as scoring

    settings = load_settings(**stack.env)
    bucket = Bucket.from_settings(settings)
    started = time.perf_counter()
    today = dt.datetime.now(dt.UTC).date()
    objects = scoring.object_keys(bucket, MODEL, [today, today + dt.timedelta(days=1)])
    outcome = scoring.backtest(candidate, bucket, objects, stack.redis, settings.keys)
    per_s = outcome.rows / (time.perf_counter() - started)
    bench.findings.challenger |= {"backtest": per_s, "written": written_per_s,
                                  "backtest_rows": outcome.rows,
                                  "backtest_objects": outcome.objects}  # fmt: skip
    bench.say(f"  backtest: {outcome.rows:,} rows of {outcome.objects:,} objects at "
              f"{per_s:,.0f} rows/s, written at {written_per_s:,.0f}")  # fmt: skip


def console(bench: Bench, stack: pipeline.PipelineStack, ingest_cores: float) -> None:
    """The ingest CPU of the console's refreshes, against the ingest's CPU at that load."""

    def renew() -> None:  # a new object per model: the refresh reads fresh rows
        for model in bench.options.models:
            url = f"{stack.ingest_url}/predict_stream?model={model}"
            headers = {"content-type": "application/json"}
            answer = httpx.post(url, content=pipeline.body(bench.records[:1]), headers=headers)
            answer.raise_for_status()
        pipeline.wait_drained(stack.redis)

    per_refresh = console_cost.refresh_cpu_s(stack.ingest_url, stack.ingest_pid(), renew)
    share = per_refresh / console_cost.REFRESH_S / ingest_cores
    bench.findings.console = {"refresh_ms": per_refresh * 1000, "ingest_cores": ingest_cores,
                              "share": share}  # fmt: skip
    bench.say(f"  console: {per_refresh * 1000:.1f} ms of ingest CPU per refresh, every "
              f"{console_cost.REFRESH_S:g} s, against {ingest_cores:.2f} cores at "
              f"{MODEL}'s 100/request load: {share:.2%}")  # fmt: skip


# What each feature costs, in the report's order: `streamfn bench` hands these to its Bench.
COSTS = (monitoring, sink_formats, estimation, explanations, challenger, canary)
