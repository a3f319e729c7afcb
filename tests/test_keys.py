"""The Redis key names: on one node exactly those of every earlier release (deployments keep their
data); on a Redis Cluster, each in the slot its scripts need."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamfn.core.keys import kinesis_key, labels_key, result_key, schema_key, shadow_key
from streamfn.core.settings import get_settings, load_settings
from streamfn.monitor.keys import index_key, open_key, window_key
from streamfn.sink import counts as pc


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The process's settings read afresh from what the test sets."""
    for name in ("REDIS_CLUSTER", "STREAM_PARTITIONS", "STREAM_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def names() -> list[str]:
    return [
        result_key("5-2"), shadow_key("5-2"), schema_key("svm"), labels_key("5-2"),
        kinesis_key("events", "checkpoints"), pc.totals_key(), pc.partitions_key(),
        pc.series_key(pc.ACCEPTED, 60), pc.versions_key("svm"), open_key(),
        window_key("svm", "3", 60), index_key("svm"),
    ]  # fmt: skip


def test_one_node_keeps_every_key_name(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("STREAM_PARTITIONS", "3")
    assert names() == [
        "streamfn:result:5-2", "streamfn:shadow:5-2", "streamfn:schema:svm",
        "streamfn:labels:5-2", "streamfn:kinesis:{events}:checkpoints",
        "streamfn:console:totals", "streamfn:console:partitions",
        "streamfn:console:ingested:60", "streamfn:console:versions:svm",
        "streamfn:monitor:open", "streamfn:monitor:svm:3:60", "streamfn:monitor:index:svm",
    ]  # fmt: skip
    assert pc.accepted_roots(load_settings(STREAM_PARTITIONS=3)) == ["streamfn:"] * 3


def test_a_cluster_puts_each_key_in_the_slot_its_script_needs(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("REDIS_CLUSTER", "true")
    environment.setenv("STREAM_PARTITIONS", "3")
    found = names()
    # A message's own keys: its partition's slot (sequence 2 mod 3), beside its stream.
    assert found[:2] == ["streamfn:{2}:result:5-2", "streamfn:{2}:shadow:5-2"]
    assert result_key("shardId-0:7") == "{streamfn}:result:shardId-0:7"  # no partition
    # Everything counted and read together: one slot.
    assert {pc.slot_tag(key) for key in found[2:]} == {"streamfn"}
    settings = load_settings(REDIS_CLUSTER=True, STREAM_PARTITIONS=3)
    roots = pc.accepted_roots(settings)
    assert [pc.slot_tag(pc.totals_key(at)) for at in roots] == [
        pc.slot_tag(stream) for stream in settings.streams
    ]  # ingest counts in its partition's slot
    single = load_settings(REDIS_CLUSTER=True, STREAM_PARTITIONS=1)
    assert pc.slot_tag(pc.totals_key(pc.accepted_roots(single)[0])) == "mlops_stream"
    kinesis = load_settings(REDIS_CLUSTER=True, STREAM_PARTITIONS=1, STREAM_BACKEND="kinesis",
                            KINESIS_STREAM="e")  # fmt: skip
    assert pc.accepted_roots(kinesis) == ["{streamfn}:"]  # where the console reads them
