"""The order of a benchmark run, its progress lines, and where its results go."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from streamfn.bench import Measurement, chart, compiled, floor, peers, pipeline, report
from streamfn.bench.load import require_wrk
from streamfn.bench.pipeline import CONNECTIONS, FLOOR_SIZES, MAX_LAG, REQUEST_SIZES
from streamfn.core.settings import SEED_MODELS, defaults
from streamfn.data import training
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.models.seed import EMPLOYEE_ID

DEFAULTS = defaults()
CURVE_MODEL = "lightgbm"
# The latency-under-load curve: rates from 10 requests/s (20 is the light-traffic target's) up
# to the maximum, each run long enough to hold about this many messages.
CURVE_FIRST_RATES = (10.0, 20.0)
CURVE_MESSAGES = 300
CURVE_MAX_SECONDS = 30.0


# One feature's cost: measured on the bench's records, into its findings (bench.costs).
Cost = Callable[["Bench", str], None]


@dataclass(frozen=True)
class Options:
    """How much to measure."""

    out: Path
    registry: str | None = None
    quick: bool = False
    pollers: int = 1
    seconds: float | None = None
    mlserver_venv: Path = Path(".venv-mlserver")
    partitions: int | None = None  # measure STREAM_PARTITIONS=1 against this, and nothing else
    costs: bool = False  # measure only what each feature costs (costs.md)

    @property
    def models(self) -> tuple[str, ...]:
        """Every model, or only LightGBM (the targets' model) when quick."""
        return ("lightgbm",) if self.quick else tuple(SEED_MODELS)

    @property
    def smoke(self) -> bool:
        """Whether this run is a smoke test: quick runs of 3 s measure the warm-up (a 3 s run
        gave 66 records/s where 8 s runs of the same stack sustained 1,500), so their figures
        only show that every stage runs, and no ratio or target is computed from them."""
        return self.quick

    @property
    def load_seconds(self) -> float:
        """Seconds of each load run."""
        return self.seconds or (3.0 if self.quick else 10.0)

    @property
    def curve_points(self) -> int:
        """Rates on the latency-under-load curve."""
        return 4 if self.quick else 8

    def curve_seconds(self, requests_per_s: float) -> float:
        """Seconds at one rate: enough messages for a p99, within bounds."""
        wanted = CURVE_MESSAGES / (3 if self.quick else 1) / requests_per_s
        return min(max(self.load_seconds, wanted), CURVE_MAX_SECONDS)

    @property
    def seed_messages(self) -> int:
        """Messages the seed's worker handles (it manages a few per second)."""
        return 5 if self.quick else 20


class Bench:
    """One benchmark run: measure every design, then write the report and chart."""

    def __init__(self, options: Options, console: Console, costs: Sequence[Cost] = ()) -> None:
        self.options = options
        self.console = console
        self.costs = costs  # what each feature costs, measured in this order (bench.costs.COSTS)
        self.work = options.out / "work"
        self.started = time.monotonic()
        self.records = RecordSampler(load_profile(), seed=11).records(max(FLOOR_SIZES))
        self.findings = report.Findings(
            command="streamfn bench" + (" --quick" if options.quick else ""),
            smoke=options.smoke,
            settings={
                "pollers": f"{options.pollers} (infer in process)",
                "ingest": "one uvicorn worker",
                "BATCH_SIZE": str(DEFAULTS.BATCH_SIZE),
                "BATCH_WINDOW_MS": str(DEFAULTS.BATCH_WINDOW_MS),
                "PREDICT_RUNTIME": DEFAULTS.PREDICT_RUNTIME,
                "wrk connections": ", ".join(f"{c} at {s}/request" for s, c in CONNECTIONS.items()),
                "load": f"{self.options.load_seconds:g} s per run",
                "S3": "moto's server (MinIO's stand-in)",
                "records": "synthetic (streamfn.synth, seed 11), some with a feature left out",
            },
        )  # fmt: skip

    def say(self, text: str) -> None:
        """A progress line with the time since the start."""
        self.console.print(f"[dim]{time.monotonic() - self.started:6.0f}s[/] {text}")

    def record(self, measurement: Measurement) -> None:
        self.findings.measurements.append(measurement)
        latency = f", p99 {measurement.p99_ms:,.0f} ms" if measurement.p99_ms else ""
        self.say(
            f"  {measurement.design} {measurement.model} {measurement.records_per_request}/req: "
            f"{measurement.records_per_s:,.0f} records/s{latency}"
        )

    def registry(self) -> str:
        """A registry with the models, trained into the output directory when none is given."""
        uri = self.options.registry or f"sqlite:///{(self.options.out / 'mlflow.db').resolve()}"
        missing = training.missing_models(uri, self.options.models)
        if missing:
            self.say(f"training {', '.join(missing)} into {uri} (once; about a minute) …")
            training.train(uri, "champion", missing)
        compiled.compile_missing(uri, self.options.models, self.say)
        return uri

    def run(self) -> tuple[Path, ...]:
        """Measure (a) to (d), write bench.md and bench.png; return their paths. (With
        --partitions, only P=1 against P: partitions.md.)"""
        require_wrk()
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        registry = self.registry()
        if self.options.partitions:
            return (self.measure_partitions(registry, self.options.partitions),)
        if self.options.costs:
            return (self.measure_costs(registry),)
        self.measure_floor(registry)
        self.measure_pipeline(registry)
        for measure in self.costs:
            measure(self, registry)
        self.measure_ingest(registry)
        self.measure_mlflow_serve(registry)
        self.measure_seed(registry)
        self.measure_mlserver(registry)
        out = self.options.out
        markdown, png, curve = out / "bench.md", out / "bench.png", out / "bench-latency.png"
        chart.chart(self.findings, png)
        chart.latency_chart(self.findings, curve)
        markdown.write_text(report.markdown(self.findings, png.name, curve.name))
        self.say(f"done: {markdown}, {png} and {curve}")
        return markdown, png

    def measure_costs(self, registry: str) -> Path:
        """Only what each feature costs the pipeline: costs.md."""
        for measure in self.costs:
            measure(self, registry)
        out = self.options.out / "costs.md"
        out.write_text(report.costs_markdown(self.findings))
        self.say(f"done: {out}")
        return out

    def measure_floor(self, registry: str) -> None:
        from streamfn.models.cache import ModelCache

        self.say("(a) the in-process floor: inputs + predict + CSV encode, as PREDICT_RUNTIME=auto "
                 "serves each model")  # fmt: skip
        cache = ModelCache(registry, "champion", 3600, SEED_MODELS)
        seconds = self.options.load_seconds / 3
        for model in self.options.models:
            for size in FLOOR_SIZES:
                self.record(floor.measure(cache.get(model), self.records[:size], seconds))
        self.say("(a) compiled inference: auto's choice, parity, one record native and ONNX")
        found = compiled.measure(registry, self.options.models, self.records, seconds)
        self.findings.compiled = found
        for c in found:
            onnx = "—" if c.onnx_p50_ms is None else f"{c.onnx_p50_ms:.3f} ms"
            self.say(f"  {c.model} v{c.version}: auto serves {c.runtime}; one record p50 native "
                     f"{c.native_p50_ms:.3f} ms, ONNX {onnx}")  # fmt: skip

    def measure_pipeline(self, registry: str) -> None:
        seconds = self.options.load_seconds
        for size in REQUEST_SIZES:
            self.say(f"(b) the pipeline over HTTP, {size} records/request: starting the stack …")
            workdir = self.work / f"pipeline-{size}"
            with pipeline.pipeline(workdir, registry, self.options.pollers, MAX_LAG[size]) as bench:
                for model in self.options.models:
                    records = self.records[:size]
                    pipeline.warm_up(bench, model, records, self.work)
                    rate = pipeline.throughput(
                        bench, model, records, seconds, CONNECTIONS[size], self.work
                    )
                    self.say(f"  {model}: {rate:,.0f} records/s sustained; latency at half …")
                    self.record(
                        pipeline.latency(
                            bench, model, records, rate, seconds, CONNECTIONS[size], self.work
                        )
                    )
                    if model == CURVE_MODEL:
                        self.measure_curve(bench, model, records, rate / size)
                pids = bench.poller_pids()
                self.findings.poller_memory_mb += [pipeline.peak_memory_mb(p) for p in pids]
                self.findings.model_loads |= pipeline.model_loads(bench.poller_metrics)

    def measure_partitions(self, registry: str, partitions: int) -> Path:
        """lightgbm end to end at 1 and 100 records/request with STREAM_PARTITIONS=1 and P on
        this one redis-server, each the best of two alternated runs; writes partitions.md.

        The records carry no Employee ID: wrk sends one body over and over, and one employee's
        requests all go to one partition. Without one, requests go round the partitions."""
        self.say(f"STREAM_PARTITIONS=1 against {partitions}, lightgbm, one redis-server")
        best: dict[tuple[int, int], float] = {}
        for size in REQUEST_SIZES:
            records = [{k: v for k, v in r.items() if k != EMPLOYEE_ID}
                       for r in self.records[:size]]  # fmt: skip
            for round_ in range(2):
                for count in (1, partitions):
                    workdir = self.work / f"partitions-{count}-{size}-{round_}"
                    with pipeline.pipeline(workdir, registry, self.options.pollers,
                                           MAX_LAG[size] * count,
                                           STREAM_PARTITIONS=str(count)) as bench:  # fmt: skip
                        pipeline.warm_up(bench, CURVE_MODEL, records, self.work)
                        rate = pipeline.throughput(bench, CURVE_MODEL, records,
                                                   self.options.load_seconds, CONNECTIONS[size],
                                                   self.work)  # fmt: skip
                    self.say(f"  {size}/request, P={count}: {rate:,.0f} records/s")
                    best[(size, count)] = max(best.get((size, count), 0.0), rate)
        out = self.options.out / "partitions.md"
        out.write_text(report.partitions_markdown(best, partitions, self.findings.settings))
        self.say(f"done: {out}")
        return out

    def curve_rates(self, max_requests_per_s: float) -> list[float]:
        """10 and 20 requests/s, then geometric steps to the maximum."""
        first = [r for r in CURVE_FIRST_RATES if r < max_requests_per_s]
        steps = self.options.curve_points - len(first)
        low = first[-1] if first else max_requests_per_s / 2
        ratio = (max_requests_per_s / low) ** (1 / steps) if steps > 0 else 1.0
        return [*first, *(low * ratio**i for i in range(1, steps + 1))]

    def measure_curve(
        self, bench: pipeline.PipelineStack, model: str, records: list, max_per_s: float
    ) -> None:
        """Latency at each rate of the curve, from 10 requests/s to the maximum."""
        size = len(records)
        for requests_per_s in self.curve_rates(max_per_s):
            connections = min(CONNECTIONS[size], max(1, math.ceil(requests_per_s / 50)))
            point = pipeline.latency_at(
                bench, model, records, requests_per_s,
                self.options.curve_seconds(requests_per_s), connections, self.work,
            )  # fmt: skip
            self.findings.curve.append(point)
            self.say(
                f"  curve {size}/req at {point.achieved_per_s:,.0f} requests/s: "
                f"p50 {point.p50_ms:,.0f} ms, p99 {point.p99_ms:,.0f} ms"
            )

    def measure_ingest(self, registry: str) -> None:
        """The ingest and the bare endpoint, each the best of two runs, alternated: one 10 s run
        of a single worker swings by a fifth here with what the machine is finishing."""
        self.say("ingest alone against a bare FastAPI + XADD endpoint")
        best: dict[tuple[str, int], Measurement] = {}
        for round_ in range(2):
            for design, app in (
                ("ingest", None),
                ("bare ingest", "streamfn.bench.bare:create_app"),
            ):
                workdir = self.work / f"{design.replace(' ', '-')}-{round_}"
                with pipeline.ingest_only(workdir, registry, app) as url:
                    pipeline.wait_accepting(url, CURVE_MODEL, self.records)
                    for size in REQUEST_SIZES:
                        found = pipeline.ingest_rate(
                            url, design, CURVE_MODEL, self.records[:size],
                            self.options.load_seconds, CONNECTIONS[size], self.work,
                        )  # fmt: skip
                        kept = best.get((design, size))
                        if kept is None or found.records_per_s > kept.records_per_s:
                            best[design, size] = found
        for measurement in best.values():
            self.record(measurement)

    def measure_mlflow_serve(self, registry: str) -> None:
        for model in self.options.models:
            self.say(f"(c) mlflow models serve, {model}: starting …")
            with peers.mlflow_serve(self.work / f"serve-{model}", registry, model) as base:
                for size in REQUEST_SIZES:
                    self.record(
                        peers.serve_rate(
                            base, model, self.records[:size], self.options.load_seconds,
                            CONNECTIONS[size], self.work,
                        )
                    )  # fmt: skip

    def measure_seed(self, registry: str) -> None:
        self.say("(d) the seed's design: a model load per message")
        with pipeline.redis_only(self.work / "seed") as redis_url:
            for model in self.options.models:
                self.record(
                    peers.seed_worker(
                        redis_url, registry, model, self.records[0], self.options.seed_messages,
                        self.work / "predicciones.csv",
                    )
                )  # fmt: skip

    def measure_mlserver(self, registry: str) -> None:
        try:
            binary = peers.ensure_mlserver(self.options.mlserver_venv.resolve(), self.say)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
            self.say(f"(e) MLServer not measured: {error}")
            return
        for model in self.options.models:
            self.say(f"(e) MLServer with adaptive batching, {model}: starting …")
            workdir = self.work / f"mlserver-{model}"
            with peers.mlserver(workdir, registry, model, binary) as base:
                for size in REQUEST_SIZES:
                    self.record(
                        peers.mlserver_rate(
                            base, model, self.records[:size], self.options.load_seconds,
                            CONNECTIONS[size], self.work,
                        )
                    )  # fmt: skip
