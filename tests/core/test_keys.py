"""The Redis key names: on one node exactly those of every earlier release (deployments keep their
data); on a Redis Cluster, each in the slot its scripts need."""

from __future__ import annotations

from streamfn.core import series
from streamfn.core.keys import Keys, slot_tag
from streamfn.core.settings import load_settings


def names(keys: Keys) -> list[str]:
    return [
        keys.result("5-2"), keys.shadow("5-2"), keys.schema("svm"), keys.labels("5-2"),
        keys.kinesis("events", "checkpoints"), keys.totals(), keys.object_days(),
        keys.series(series.ACCEPTED, 60), keys.versions("svm"), keys.open_windows(),
        keys.window("svm", "3", 60), keys.window_index("svm"),
    ]  # fmt: skip


def test_one_node_keeps_every_key_name() -> None:
    settings = load_settings(STREAM_PARTITIONS=3)
    assert names(settings.keys) == [
        "streamfn:result:5-2", "streamfn:shadow:5-2", "streamfn:schema:svm",
        "streamfn:labels:5-2", "streamfn:kinesis:{events}:checkpoints",
        "streamfn:console:totals", "streamfn:console:partitions",
        "streamfn:console:ingested:60", "streamfn:console:versions:svm",
        "streamfn:monitor:open", "streamfn:monitor:svm:3:60", "streamfn:monitor:index:svm",
    ]  # fmt: skip
    assert settings.keys.accepted_roots() == ["streamfn:"] * 3


def test_a_cluster_puts_each_key_in_the_slot_its_script_needs() -> None:
    settings = load_settings(REDIS_CLUSTER=True, STREAM_PARTITIONS=3)
    keys = settings.keys
    found = names(keys)
    # A message's own keys: its partition's slot (sequence 2 mod 3), beside its stream.
    assert found[:2] == ["streamfn:{2}:result:5-2", "streamfn:{2}:shadow:5-2"]
    assert keys.result("shardId-0:7") == "{streamfn}:result:shardId-0:7"  # no partition
    # Everything counted and read together: one slot.
    assert {slot_tag(key) for key in found[2:]} == {"streamfn"}
    roots = keys.accepted_roots()
    assert [slot_tag(keys.totals(at)) for at in roots] == [
        slot_tag(stream) for stream in settings.streams
    ]  # ingest counts in its partition's slot
    single = load_settings(REDIS_CLUSTER=True, STREAM_PARTITIONS=1).keys
    assert slot_tag(single.totals(single.accepted_roots()[0])) == "mlops_stream"
    kinesis = load_settings(REDIS_CLUSTER=True, STREAM_PARTITIONS=1, STREAM_BACKEND="kinesis",
                            KINESIS_STREAM="e")  # fmt: skip
    assert kinesis.keys.accepted_roots() == ["{streamfn}:"]  # where the console reads them


def test_key_names_come_from_the_settings_given_not_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")  # what another process might say
    assert load_settings(REDIS_CLUSTER=False).keys.result("5-2") == "streamfn:result:5-2"
