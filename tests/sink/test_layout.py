"""The bucket's layout: keys built by the sink's one layout module, and read back by it."""

from __future__ import annotations

import datetime

import pytest

from streamfn.core.message_ids import key_part
from streamfn.sink.layout import (
    MONITORING,
    PREDICTIONS,
    SHADOW,
    object_key,
    parse_key,
    prefix,
    window_key,
)

DAY = datetime.date(2025, 11, 26)


def test_key_is_hive_partitioned_and_starts_with_the_first_id() -> None:
    key = object_key(PREDICTIONS, "svm", DAY, ["1764141569200-0", "1764141569123-1"], ".csv")
    assert key.startswith("predictions/model=svm/date=2025-11-26/1764141569123-1_")
    name = key.rsplit("/", 1)[1]
    assert name.endswith(".csv")
    assert len(name) == len("1764141569123-1_") + 16 + len(".csv")


def test_key_is_deterministic_and_order_insensitive() -> None:
    ids = ["1764141569123-0", "1764141569124-0", "1764141569200-3"]
    key = object_key(PREDICTIONS, "knn", DAY, ids, ".csv")
    assert object_key(PREDICTIONS, "knn", DAY, list(ids), ".csv") == key
    assert object_key(PREDICTIONS, "knn", DAY, ids[::-1], ".csv") == key
    # A duplicate changes nothing.
    assert object_key(PREDICTIONS, "knn", DAY, [*ids, ids[0]], ".csv") == key


def test_different_ids_or_partitions_give_different_keys() -> None:
    ids = ["1764141569123-0", "1764141569124-0"]
    key = object_key(PREDICTIONS, "knn", DAY, ids, ".csv")
    others = {
        object_key(PREDICTIONS, "knn", DAY, ids[:1], ".csv"),
        object_key(PREDICTIONS, "knn", DAY, [*ids, "1764141569125-0"], ".csv"),
        object_key(PREDICTIONS, "knn", DAY, ["1764141569123-0", "1764141569124-1"], ".csv"),
        object_key(PREDICTIONS, "svm", DAY, ids, ".csv"),
        object_key(PREDICTIONS, "knn", DAY + datetime.timedelta(days=1), ids, ".csv"),
    }
    assert key not in others
    assert len(others) == 5


def test_stream_ids_sort_as_numbers() -> None:
    key = object_key(PREDICTIONS, "svm", DAY, ["10-0", "9-5", "9-10"], ".csv")
    assert key.rsplit("/", 1)[1].startswith("9-5_")


def test_key_from_a_datetime_keeps_a_bare_date() -> None:
    moment = datetime.datetime(2025, 11, 26, 23, 59, tzinfo=datetime.UTC)
    assert "/date=2025-11-26/" in object_key(PREDICTIONS, "svm", moment, ["1-0"], ".csv")


def test_key_cannot_escape_its_partition() -> None:
    key = object_key(PREDICTIONS, "svm", DAY, ["../evil/id"], ".csv")
    assert key.count("/") == 3
    assert key.rsplit("/", 1)[1].startswith(".._evil_id_")
    with pytest.raises(ValueError, match="partition"):
        object_key(PREDICTIONS, "svm/../x", DAY, ["1-0"], ".csv")
    with pytest.raises(ValueError, match="at least one"):
        object_key(PREDICTIONS, "svm", DAY, [], ".csv")


# Message ids of every backend: a stream id, a Kinesis `<shard>:<sequence>`, an SQS UUID.
IDS = {
    "redis": "1764141569123-4",
    "kinesis": "shardId-000000000001:49651505285663352836537486227734637237316366137024135186",
    "sqs": "0f4e0c2a-5d7b-4bb8-9d0e-2f8f3c8a1b6e",
}


@pytest.mark.parametrize("backend", IDS)
@pytest.mark.parametrize(("kind", "suffix"), [(PREDICTIONS, ".csv"), (PREDICTIONS, ".parquet"),
                                              (SHADOW, ".csv")])  # fmt: skip
def test_a_row_objects_key_reads_back_whatever_the_backend(
    backend: str, kind: str, suffix: str
) -> None:
    key = object_key(kind, "lightgbm", DAY, [IDS[backend]], suffix)
    place = parse_key(key)
    assert place is not None
    assert (place.kind, place.model, place.day, place.suffix) == (kind, "lightgbm", "2025-11-26",
                                                                   suffix)  # fmt: skip
    assert place.first_message_id == key_part(IDS[backend])  # a Kinesis id loses its colon
    assert place.window is None


def test_a_windows_key_reads_back() -> None:
    key = window_key("svm", "3", 1764141540)
    assert key == "monitoring/model=svm/date=2025-11-26/1764141540_v3.json"
    place = parse_key(key)
    assert place is not None
    assert (place.kind, place.window, place.first_message_id) == (MONITORING, (1764141540, "3"),
                                                                   None)  # fmt: skip


@pytest.mark.parametrize(
    "key",
    [
        "predictions/model=svm/date=2025-11-26/1-0_0123456789abcdef.csv\n",  # a trailing newline
        "predictions/model=svm/date=2025-11-26/1-0_0123456789abcdef.csv/x",
        "predictions/model=svm/date=2025-11-26/../1-0_0123456789abcdef.csv",
        "predictions/model=svm/date=2025-11-26/1-0.csv",  # no hash: not a row object's name
        "predictions/model=svm/date=26-11-2025/1-0_0123456789abcdef.csv",
        "monitoring/model=svm/date=2025-11-26/1764141540_v3.csv",  # a window is JSON
        "monitoring/model=svm/date=2025-11-26/1-0_0123456789abcdef.json",
        "elsewhere/model=svm/date=2025-11-26/1-0_0123456789abcdef.csv",
        "/predictions/model=svm/date=2025-11-26/1-0_0123456789abcdef.csv",
    ],
)
def test_keys_this_layout_never_makes_are_not_read(key: str) -> None:
    assert parse_key(key) is None


def test_prefixes_narrow_by_model_and_date() -> None:
    assert prefix(PREDICTIONS) == "predictions/"
    assert prefix(PREDICTIONS, "svm") == "predictions/model=svm/"
    assert prefix(SHADOW, "svm", DAY) == "shadow/model=svm/date=2025-11-26/"
    assert object_key(SHADOW, "svm", DAY, ["1-0"], ".csv").startswith(prefix(SHADOW, "svm", DAY))
