"""`streamfn bench-ceilings`: the cheap parts (XADD, XREADGROUP, S3 PUT) measure what they say."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from streamfn.bench import ceilings
from streamfn.bench.ceilings import redis_server, results, s3

SECONDS = 0.2


def test_xadd_writes_the_entries_it_counts_and_xreadgroup_reads_and_acks_them(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    records = results.sample_records(100)
    for size in results.SIZES:
        stream = f"ceilings-test:{size}"
        written = redis_server.measure_xadd(client, stream, records[:size], SECONDS)
        assert client.xlen(stream) == written.count > 0
        assert written.records_per_unit == size
        assert written.bytes_per_unit == len(results.entry_fields(records[:size])["data"])
        # An entry holds the records as the ingest stores them, in the `data` field.
        entry = client.xrange(stream, count=1)[0][1]
        assert len(orjson.loads(entry[b"data"])) == size
        assert {b"model", b"data", b"received_at"} == set(entry)

        read = redis_server.measure_xreadgroup(client, stream, size, seconds=5.0)
        # Given time enough, it reads the whole stream, once, and acknowledges all of it.
        assert read.count == written.count
        assert client.xpending(stream, redis_server.GROUP)["pending"] == 0
        for measured in (written, read):
            assert measured.per_s > 0
            assert measured.per_s == pytest.approx(measured.count / measured.seconds)
            assert measured.records_per_s == pytest.approx(measured.per_s * size)
            assert measured.mb_per_s == pytest.approx(measured.per_s * written.bytes_per_unit / 1e6)


def test_the_cheap_parts_through_the_public_function(tmp_path: Path) -> None:
    said: list[str] = []
    found = ceilings.measure(tmp_path, SECONDS, ("xadd", "xreadgroup", "s3"), say=said.append)
    shapes = {(c.part, c.shape) for c in found}
    assert {
        ("xadd", "1 record/entry"),
        ("xadd", "100 records/entry"),
        ("xreadgroup", "1 record/entry"),
        ("xreadgroup", "100 records/entry"),
        ("s3", "sequential"),
        ("s3", f"{s3.S3_THREADS} threads"),
    } <= shapes
    assert [c.part for c in found] == sorted((c.part for c in found), key=ceilings.PARTS.index)
    for c in found:
        assert min(c.per_s, c.count, c.seconds) > 0, c
        assert c.records_per_s == pytest.approx(c.per_s * c.records_per_unit)
    by_shape = {(c.part, c.shape): c for c in found}
    for size in results.SIZES:
        shape = "1 record/entry" if size == 1 else f"{size} records/entry"
        written, read = by_shape["xadd", shape], by_shape["xreadgroup", shape]
        assert read.count <= written.count  # nothing read that was not written
        assert written.records_per_s == pytest.approx(written.per_s * size)
        assert read.records_per_s == pytest.approx(read.per_s * size)
    put = by_shape["s3", "sequential"]
    assert put.records_per_s == 0
    assert put.bytes_per_unit == pytest.approx(s3.S3_OBJECT_BYTES, rel=0.1)
    assert any("measuring XADD" in line for line in said)
    table = results.markdown(found)
    assert table.count("\n") == len(found) + 1
    assert orjson.loads(results.as_json(found))[0]["records_per_s"] > 0
