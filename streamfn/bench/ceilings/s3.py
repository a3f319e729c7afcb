"""(e) PUTs/s of a ~20 KB CSV object to moto's S3 server from one boto3 client, sequential and
from several threads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from streamfn.bench.ceilings.results import MODEL, Ceiling, Say, sample_records
from streamfn.sink.layout import PREDICTIONS, object_key

S3_THREADS = 8
S3_OBJECT_BYTES = 20 * 1024


def csv_body(target_bytes: int = S3_OBJECT_BYTES) -> tuple[bytes, int]:
    """A CSV of synthetic records of about `target_bytes`; its bytes and rows."""
    records = sample_records(max(1, target_bytes // 60))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), extrasaction="ignore")
    writer.writeheader()
    rows = 0
    for record in records:
        writer.writerow(record)
        rows += 1
        if out.tell() >= target_bytes:
            break
    return out.getvalue().encode(), rows


def measure_s3(
    endpoint: str, seconds: float, threads: Sequence[int] = (1, S3_THREADS),
    say: Say = lambda _: None,
) -> list[Ceiling]:  # fmt: skip
    """(e) PUTs/s of a ~20 KB CSV to the S3 server at `endpoint`, from one client, sequential
    (1 thread) and from a pool of threads."""
    from botocore.config import Config

    from streamfn.core.aws import aws_session
    from streamfn.core.settings import load_settings
    from streamfn.sink.bucket import Bucket

    settings = load_settings(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench",
                             AWS_SECRET_ACCESS_KEY="bench")  # fmt: skip
    session = aws_session(settings)
    client = session.client(
        "s3", endpoint_url=endpoint,
        config=Config(max_pool_connections=max(threads) + 2, signature_version="s3v4",
                      request_checksum_calculation="when_required"),
    )  # fmt: skip
    Bucket(client, settings.PREDICTIONS_BUCKET).ensure()
    body, rows = csv_body()
    day = dt.datetime.now(dt.UTC).date()
    found = []
    for pool in threads:
        say(f"measuring S3 PUT of {len(body):,} bytes, {pool} thread(s) …")
        done = [0] * pool
        deadline = time.perf_counter() + seconds

        def put(worker: int, deadline: float = deadline, done: list[int] = done,
                pool: int = pool) -> None:  # fmt: skip
            while time.perf_counter() < deadline:
                # A key as the infer function makes one (one message id each, of its own).
                ids = [f"{pool}-{worker * 1_000_000 + done[worker]}"]
                key = object_key(PREDICTIONS, MODEL, day, ids, ".csv")
                client.put_object(Bucket=settings.PREDICTIONS_BUCKET, Key=key, Body=body,
                                  ContentType="text/csv")  # fmt: skip
                done[worker] += 1

        started = time.perf_counter()
        if pool == 1:
            put(0)
        else:
            with ThreadPoolExecutor(pool) as executor:
                for future in [executor.submit(put, i) for i in range(pool)]:
                    future.result()
        elapsed = time.perf_counter() - started
        shape = "sequential" if pool == 1 else f"{pool} threads"
        found.append(Ceiling("s3", shape, "PUTs", sum(done) / elapsed, 0, sum(done), elapsed,
                             len(body), {"rows/object": rows}))  # fmt: skip
        say(f"  {found[-1].per_s:,.0f} PUTs/s")
    return found
