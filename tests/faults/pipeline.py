"""The fault suite's pipeline: the commands a user runs, as child processes, faults on demand.

Every case runs redis-server with AOF, `streamfn ingest`, `streamfn poll` children and
`streamfn produce` against a real MLflow server and moto's S3 server, breaks one thing, waits for
the stream to drain, then counts the bucket row by row (`Pipeline.tally`). Children are
`streamfn.local.stack` processes, as `streamfn up` runs them.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from streamfn.core import metrics
from streamfn.core.keys import dlq_key
from streamfn.core.settings import SEED_MODELS, Settings, defaults, load_settings
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.local import services
from streamfn.local.stack import Process, Service, Stack, always_ok, cli, free_port
from streamfn.models.seed import EMPLOYEE_ID
from streamfn.monitor.windowing import window_of
from tests.conftest import S3_TEST_ENV, TcpProxy, bucket_rows, wait_for
from tests.faults.estimates import check_sums
from tests.faults.parts import MotoS3, Production, Registry, metric_samples, planned_records
from tests.faults.tally import Tally, count_rows, epoch_s, report

DEFAULTS = defaults()
STREAM = DEFAULTS.STREAM_KEY
GROUP = DEFAULTS.CONSUMER_GROUP
DLQ = dlq_key(DEFAULTS.STREAM_KEY)
TAIL_LINES = 12
BUCKET = DEFAULTS.PREDICTIONS_BUCKET
# Reclaim must happen within a test's time. A live poller's entries are not reclaimed under it,
# however long its batch takes (it holds them while it works), so this can be short.
POLLER_ENV = {"CLAIM_IDLE_MS": "2000", "BATCH_SIZE": "20", "BATCH_WINDOW_MS": "20"}


class Pipeline:
    """One real pipeline: redis-server, S3, an MLflow proxy, ingest, pollers and producers."""

    def __init__(self, tmp_path: Path, registry: Registry, s3: MotoS3) -> None:
        self.tmp = tmp_path
        self.registry = registry
        self.s3 = s3
        self.mlflow = TcpProxy(registry.port)
        self.started = time.monotonic()
        self.children: dict[str, Process] = {}
        self.retired: list[Process] = []  # killed or replaced: their logs still tell the story
        self.metrics_ports: dict[str, int] = {}
        self.accepted: dict[str, str] = {}  # Employee ID -> model, of every record answered 202
        self.challenged: set[str] = set()  # models whose every row must have one shadow row
        self.redis_port = free_port()
        self.ingest_port = free_port()
        self.redis_dir = tmp_path / "redis"
        self.redis_dir.mkdir()
        # Nothing of the developer's environment may reach the children's settings.
        self.env: dict[str, str] = {
            **{k: v for k, v in os.environ.items() if k not in Settings.model_fields},
            **S3_TEST_ENV,
            **POLLER_ENV,
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "MLFLOW_TRACKING_URI": self.mlflow.uri,
            "AWS_ENDPOINT_URL_S3": s3.endpoint,
            "INGEST_URL": f"http://127.0.0.1:{self.ingest_port}",
        }
        self.r = redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=5)
        self.stack = Stack(tmp_path, self.env)

    def boot(self) -> None:
        """Start Redis and create the group, so that lag and drain are defined from the start."""
        self.start_redis()
        self.r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)

    # -- processes -------------------------------------------------------------------------

    def spawn(
        self, name: str, command: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Process:
        """Start a child with the pipeline's environment (and `env`), logging to logs/NAME.log."""
        if name in self.children:
            self.retired.append(self.children.pop(name))
        child = self.stack.spawn(Service(name, list(command), always_ok, env=dict(env or {})))
        self.children[name] = child
        return child

    def wait(self, check: Callable[[], object], timeout: float, what: str) -> object:
        """wait_for, failing with what was awaited and the tail of every child's log."""
        try:
            return wait_for(check, timeout=timeout, interval=0.1)
        except pytest.fail.Exception:
            pytest.fail(f"{what}: not within {timeout}s\n{self.logs()}", pytrace=False)

    def logs(self) -> str:
        """The tail of every child's log, for assertion messages."""
        return "\n".join(
            f"--- {c.name} (pid {c.pid}) ---\n{c.tail(TAIL_LINES)}"
            for c in [*self.retired, *self.children.values()]
        )

    def log_lines(self, text: str, *names: str) -> list[str]:
        """Lines containing `text` in the whole logs of the children named (retired ones too)."""
        children = [c for c in [*self.retired, *self.children.values()] if c.name in names]
        return [
            line
            for child in children
            for line in child.log.read_text(errors="replace").splitlines()
            if text in line
        ]

    def start_redis(self) -> None:
        """redis-server with AOF on this pipeline's dir and port; wait until it has loaded."""
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not on PATH: apt-get install -y redis-server")
        self.spawn("redis", services.redis(self.redis_port, self.redis_dir).command)
        # PING answers LOADING (an error) until the AOF is replayed.
        self.wait(self.r.ping, 30, "redis-server answers PING")

    def kill_redis(self) -> None:
        """SIGKILL redis-server: no shutdown, no final fsync."""
        self.children["redis"].kill()

    def start(self, *pollers: str, warm: bool = True, **env: str) -> None:
        """Ingest and pollers with this case's `env` (kept for later children), then warm them."""
        self.env.update(env)
        # Pollers first: their imports run while the ingest starts.
        self.start_pollers(*pollers)
        self.start_ingest()
        if warm:
            self.warm_up(*pollers)

    def start_ingest(self) -> None:
        """`streamfn ingest` on a private port; wait until /health answers as the ingest does.
        The port was free when it was chosen, but the other test worker's children bind ports
        too: when one took it meanwhile, the ingest exits, and starts again on another port."""
        for _ in range(3):
            command = cli("ingest", "--host", "127.0.0.1", "--port", str(self.ingest_port))
            ingest = self.spawn("ingest", command)
            url = f"{self.env['INGEST_URL']}/health"

            def answered(ingest: Process = ingest, url: str = url) -> bool:
                if not ingest.running:  # it could not bind: another port
                    return True
                return httpx.get(url, timeout=2).json().get("redis") == "ok"

            self.wait(answered, 30, "ingest /health")
            if ingest.running:
                return
            self.ingest_port = free_port()
            self.env["INGEST_URL"] = f"http://127.0.0.1:{self.ingest_port}"
        pytest.fail(f"the ingest exited at start three times\n{self.logs()}", pytrace=False)

    def start_pollers(self, *names: str, **env: str) -> None:
        """`streamfn poll --consumer NAME` children, each serving metrics on a port of its own;
        `env` is for these pollers only."""
        for name in names:
            self.metrics_ports[name] = port = free_port()
            command = cli("poll", "--consumer", name, "--metrics-port", str(port))
            self.spawn(name, command, env)

    def wait_up(self, *names: str) -> None:
        """Wait until each poller named serves its metrics (its imports are done)."""
        for name in names:
            port = self.metrics_ports[name]
            self.wait(
                lambda p=port: metric_samples(p, metrics.sample_name(metrics.POLLER_LAG)),
                60,
                f"{name} up",
            )

    def kill_poller(self, name: str) -> None:
        """SIGKILL a poller: it dies holding whatever it had read."""
        child = self.children.pop(name)
        child.kill()
        self.retired.append(child)

    def signal_pollers(self, signum: int) -> None:
        """Send a signal (SIGSTOP, SIGCONT) to every running poller."""
        for name in self.metrics_ports:
            if name in self.children:
                self.children[name].signal(signum)

    def close(self) -> None:
        """Stop every child (all at once, redis last) and the proxy; leave nothing behind."""
        children = [c for c in self.children.values() if not c.name.startswith("redis")]
        for child in children:
            child.terminate()  # together: each poller's last batch finishes in parallel
        for child in [*children, *self.children.values()]:
            child.stop()
        for child in self.retired:
            if child.running:
                child.kill()
        self.mlflow.stop()

    # -- traffic ---------------------------------------------------------------------------

    def accept(self, records: Mapping[str, str]) -> None:
        """Count records as accepted; an Employee ID seen twice would make the counts lie."""
        repeated = set(records) & set(self.accepted)
        assert not repeated, f"Employee IDs reused within a case: {sorted(repeated)[:5]}"
        self.accepted.update(records)

    def produce(
        self,
        count: int,
        seed: int,
        batch: int = 10,
        models: Sequence[str] = tuple(SEED_MODELS),
        rate: float | None = None,
        concurrency: int = 4,
        labels: bool = False,
    ) -> Production:
        """Start `streamfn produce` for `count` records (its records are known in advance)."""
        records = planned_records(count, batch, seed, models)
        command = cli(
            "produce", "--count", str(count), "--batch", str(batch), "--seed", str(seed),
            "--concurrency", str(concurrency), "--give-up-s", "120",
        )  # fmt: skip
        command += [arg for model in models for arg in ("--model", model)]
        if rate is not None:
            command += ["--rate", str(rate)]
        if labels:
            command.append("--labels")
        return Production(self.spawn(f"producer-{seed}", command), records)

    def finish(self, production: Production, timeout: float = 120) -> dict[str, Any]:
        """Wait for a producer to exit; its summary; its records accepted only if all were."""
        self.wait(lambda: not production.child.running, timeout, "producer finished")
        lines = production.child.log.read_text().splitlines()
        summaries = [orjson.loads(x) for x in lines if '"producer finished"' in x]
        assert summaries, f"no producer summary\n{self.logs()}"
        summary = production.summary = summaries[-1]
        # Which records of a partly delivered run got in is unknown: every case needs them all.
        assert (summary["accepted"], summary["undelivered"], summary["rejected"]) == (
            len(production.records), 0, 0,
        ), f"producer: {summary}\n{self.logs()}"  # fmt: skip
        self.accept(production.records)
        return summary

    def send(self, model: str, records: Sequence[Mapping[str, Any]]) -> str:
        """POST records through the ingest with httpx; their message id (202 expected)."""
        answer = httpx.post(
            f"{self.env['INGEST_URL']}/predict_stream",
            params={"model": model},
            json={"data": list(records)},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        self.accept({str(r[EMPLOYEE_ID]): model for r in records})
        return str(answer.json()["message_id"])

    def model_loads(self, poller: str) -> dict[tuple[str, str], float]:
        """(model, version) -> loads, from a poller's streamfn_model_loads_total."""
        samples = metric_samples(
            self.metrics_ports[poller], metrics.sample_name(metrics.MODEL_LOADS)
        )
        return {(labels["model"], labels["version"]): value for labels, value in samples}

    def poller_total(self, name: str, *pollers: str) -> float:
        """The sum of a counter over the pollers named."""
        self.wait_up(*pollers)
        return sum(v for p in pollers for _, v in metric_samples(self.metrics_ports[p], name))

    def warm_up(self, *pollers: str, seed: int = 1) -> None:
        """One message per model whenever the stream is drained, until every poller has them all."""
        # A cold poller loads the models inside its first batches, longer than CLAIM_IDLE_MS, so
        # its peer may reclaim and process the same entries. Harmless here: each model's group
        # is then one message, whose object key (derived from its id) is the same for both.
        sampler = RecordSampler(load_profile(), seed)
        sent = itertools.count()

        def record() -> dict[str, Any]:
            # An id of its own style: a drawn one could repeat one of the case's producer.
            return {**sampler.record(), EMPLOYEE_ID: f"warm-up-{next(sent)}"}

        def loaded(poller: str) -> bool:
            try:
                return {m for m, _ in self.model_loads(poller)} == set(SEED_MODELS)
            except httpx.HTTPError:
                return False  # its metrics are not served yet: still importing

        def warm() -> bool:
            if all(loaded(p) for p in pollers):
                return True
            if self.drained():
                for model in SEED_MODELS:
                    self.send(model, [record()])
            return False

        self.wait(warm, 90, f"{', '.join(pollers)} loaded every model")

    # -- the stream and the bucket ----------------------------------------------------------

    def pending(self, consumer: str | None = None) -> int:
        """Entries read but not acknowledged: by the group, or by one consumer."""
        if consumer is None:
            return int(self.r.xpending(STREAM, GROUP)["pending"])
        return len(self.r.xpending_range(STREAM, GROUP, "-", "+", 1000, consumername=consumer))

    def group(self) -> dict[str, Any]:
        """XINFO GROUPS of the pollers' group (it must exist)."""
        groups = {g["name"]: g for g in self.r.xinfo_groups(STREAM)}
        assert GROUP in groups, f"consumer group {GROUP} is gone: {groups}"
        return groups[GROUP]

    def added(self) -> int:
        """Entries ever added to the stream (trimming does not lower it)."""
        return int(self.r.xinfo_stream(STREAM)["entries-added"])

    def drained(self) -> bool:
        """Every entry delivered to the group and acknowledged (or dead-lettered); on Kinesis or
        SQS, which have no group to ask, every accepted record written."""
        if self.env.get("STREAM_BACKEND", "redis") != "redis":
            return set(self.accepted) <= {row[EMPLOYEE_ID] for row in self.rows()}
        last = self.r.xinfo_stream(STREAM)["last-generated-id"]
        group = self.group()
        return group["pending"] == 0 and group["last-delivered-id"] == last

    def drain(self, timeout: float = 120) -> None:
        """Wait until the stream is drained: group lag 0 and nothing pending."""
        self.wait(self.drained, timeout, "stream drained")

    def dead_letters(self) -> list[dict[str, str]]:
        """Every entry of the dead-letter stream, with its id under `id`."""
        return [{"id": i, **fields} for i, fields in self.r.xrange(DLQ)]

    def rows(self) -> list[dict[str, str]]:
        """Every CSV row in the bucket."""
        return bucket_rows(self.s3.client, BUCKET)

    def wait_rows(self, count: int, what: str) -> None:
        """Wait until the bucket holds at least `count` rows (traffic is flowing end to end)."""
        self.wait(lambda: len(self.rows()) >= count, 60, f"{count} rows {what}")

    def tally(self, fault: str) -> Tally:
        """Count the bucket against the accepted records and the DLQ; report the summary line."""
        counted = count_rows(
            fault,
            self.accepted,
            self.rows(),
            self.dead_letters(),
            time.monotonic() - self.started,
        )
        report(counted)
        return counted

    def check(self, tally: Tally, **overrides: int | None) -> None:
        """Assert every accepted record written once, nothing else, unless overridden (None:
        not checked here); on a difference show examples and the logs."""
        expected = {"lost": 0, "duplicated": 0, "duplicated_keys": 0, "dead_lettered": 0,
                    "unexpected": 0, "written": tally.accepted}  # fmt: skip
        expected = {k: v for k, v in (expected | overrides).items() if v is not None}
        actual = {name: getattr(tally, name) for name in expected}
        assert actual == expected, self.explain(tally)
        self.check_monitoring()
        if self.challenged:
            self.check_shadow()

    def shadow_rows(self) -> list[dict[str, str]]:
        """Every row of every shadow object in the bucket."""
        return bucket_rows(self.s3.client, BUCKET, prefix="shadow/")

    def check_shadow(self) -> None:
        """Each row of a challenged model has exactly one shadow row, which names the champion's
        version and prediction; no other shadow row exists."""
        champion = {(r["message_id"], r["record_index"]): r for r in self.rows()
                    if r["model"] in self.challenged}  # fmt: skip
        shadow = Counter((r["message_id"], r["record_index"]) for r in self.shadow_rows())
        missing = sorted(set(champion) - set(shadow))[:5]
        twice = sorted(k for k, n in shadow.items() if n > 1)[:5]
        extra = sorted(set(shadow) - set(champion))[:5]
        assert (missing, twice, extra) == ([], [], []), (
            f"shadow rows: missing {missing}, twice {twice}, unexpected {extra}\n{self.logs()}"
        )
        for row in self.shadow_rows():
            ours = champion[(row["message_id"], row["record_index"])]
            assert (row["champion_version"], row["champion_prediction"]) == (
                ours["model_version"], ours["prediction"],
            ), f"shadow row {row} does not name its champion row {ours}"  # fmt: skip

    def wait_challenger(self, model: str, version: str, *pollers: str) -> None:
        """Wait until each poller named has loaded the challenger version."""
        for poller in pollers:
            self.wait(lambda p=poller: (model, version) in self.model_loads(p), 60,
                      f"{poller} loaded challenger v{version}")  # fmt: skip

    def check_monitoring(self) -> None:
        """The monitoring counts are the bucket's rows exactly: records per model, version and
        window, and each class predicted."""
        window_s = float(self.env.get("MONITOR_WINDOW_S", DEFAULTS.MONITOR_WINDOW_S))
        from_rows: Counter[tuple[str, str, int, str]] = Counter()
        for row in self.rows():
            received = int(epoch_s(row["received_at"]) * 1000)
            where = (row["model"], row["model_version"], window_of(received, window_s))
            from_rows[(*where, "records")] += 1
            from_rows[(*where, f"p:{row['prediction']}")] += 1
        counted: Counter[tuple[str, str, int, str]] = Counter()
        keys = load_settings(**self.env).keys
        for model in {key[0] for key in from_rows}:
            for member in self.r.zrange(keys.window_index(model), 0, -1):
                version, start = member.rsplit(":", 1)
                for field, value in self.r.hgetall(keys.window(model, version, int(start))).items():
                    if field == "records" or field.startswith("p:"):
                        counted[(model, version, int(start), field)] = int(value)
        apart = {k: (counted.get(k, 0), from_rows.get(k, 0)) for k in counted | from_rows
                 if counted.get(k, 0) != from_rows.get(k, 0)}  # fmt: skip
        assert not apart, f"monitoring counts (counted, rows) differ: {apart}\n{self.logs()}"
        if self.env.get("OUTPUT_EXPLANATIONS"):
            assert check_sums(self.rows(), self.r, keys, window_s, self.registry.uri) > 0

    def explain(self, tally: Tally) -> str:
        """An assertion message: the counts, examples of each anomaly, the logs."""
        return f"{tally.line()}\nexamples: {tally.examples}\n{self.logs()}"
