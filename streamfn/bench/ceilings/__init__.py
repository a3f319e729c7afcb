"""`streamfn bench-ceilings`: what each part of the pipeline does at most on this machine.

Each part alone, on its own throwaway servers (free ports, files under --out):

(a) XADD/s of one redis-server (AOF everysec, as `streamfn up` runs it) from one client, pipelined
    (redis-py, transaction=False), entries shaped as the ingest writes them (model, data as JSON,
    received_at) with 1 and 100 synthetic records each; and the same XADDs from redis-benchmark
    (C, one connection), the server's own ceiling without redis-py's cost per command;
(b) XREADGROUP/s of those entries back, COUNT 256, each round trip also XACKing the entries the
    previous one read;
(c) requests/s of one ingest worker (`streamfn ingest`, one uvicorn worker) under wrk;
(d) records/s one poller (`streamfn poll`, infer in process) sustains for one model: backlogs
    XADDed straight into the stream, timed until the group has acknowledged all of them;
(e) PUTs/s of a ~20 KB CSV to moto's S3 server from one boto3 client, sequential and from 8
    threads.

Beside the rates: the redis-server's CPU (INFO cpu) per entry or request, the ingest's and the
poller's cores, an entry's bytes in Redis and a result key's MEMORY USAGE, for sizing.
(a), (b) and (e) need only redis-server and moto; (c) needs wrk and a registry holding the model's
schema; (d) needs the model itself. The registry is `--tracking-uri`, or a SQLite store trained once
under --out (about a minute).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from streamfn.bench.ceilings.processes import measure_ingest, measure_poller
from streamfn.bench.ceilings.redis_server import measure_redis
from streamfn.bench.ceilings.results import MODEL, SIZES, Ceiling, Say, sample_records
from streamfn.bench.ceilings.s3 import measure_s3

PARTS = ("xadd", "xreadgroup", "ingest", "poller", "s3")


def registry_for(out: Path, registry: str | None, say: Say) -> str:
    """`registry`, or a SQLite store under `out` with the model trained into it once."""
    from streamfn.data import training

    uri = registry or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    if training.missing_models(uri, (MODEL,)):
        say(f"training {MODEL} into {uri} (once; about a minute) …")
        training.train(uri, "champion", [MODEL])
    return uri


def measure(
    out: Path, seconds: float, parts: Sequence[str] = PARTS, registry: str | None = None,
    say: Say = lambda _: None,
) -> list[Ceiling]:  # fmt: skip
    """Every part asked for, each on servers of its own under `out`."""
    from streamfn.bench import pipeline
    from streamfn.local import services, stack

    out.mkdir(parents=True, exist_ok=True)
    records = sample_records(max(SIZES))
    found: list[Ceiling] = []
    if {"xadd", "xreadgroup"} & set(parts):
        with pipeline.redis_only(out / "redis") as url:
            found += measure_redis(url, records, seconds, say=say, parts=parts)
        shutil.rmtree(out / "redis" / "redis", ignore_errors=True)  # its AOF: gigabytes
    if "s3" in parts:
        port = stack.free_port()
        with pipeline.running(out / "s3", [services.moto_s3(port)]):
            found += measure_s3(f"http://127.0.0.1:{port}", seconds, say=say)
    if {"ingest", "poller"} & set(parts):
        uri = registry_for(out, registry, say)
        if "ingest" in parts:
            found += measure_ingest(out, uri, records, max(seconds, 1.0), say=say)
        if "poller" in parts:
            found += measure_poller(out, uri, records, seconds, say=say)
    order = {part: i for i, part in enumerate(PARTS)}
    return sorted(found, key=lambda c: order[c.part])
