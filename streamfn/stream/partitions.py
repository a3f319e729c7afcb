"""The stream's partitions: which one a request goes to, and which one an id came from.

With STREAM_PARTITIONS=1 the stream is STREAM_KEY, as it always was. With P > 1 it is P streams
`<STREAM_KEY>:{p}`: the hash tag puts a partition's stream and its dead letters in one Redis
Cluster slot, and P partitions spread over the cluster's masters.

Ingest sends a request to the partition of its first record's Employee ID, so one employee's
requests keep their order; a request without one goes to the partition of its Idempotency-Key
(so that a retry meets the first request's record), else round the partitions. Partition p's
stream ids have a sequence number equal to p modulo P (the ingest's append script picks them):
ids are unique across partitions, and an id alone says which stream holds it.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

from streamfn.core import stream_ids
from streamfn.models.seed import EMPLOYEE_ID


class Router:
    """Chooses a request's partition."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._turn = itertools.count()

    def partition(self, records: list[dict[str, Any]], idempotency: str | None = None) -> int:
        """The partition of the first record's Employee ID, else of the Idempotency-Key (its
        hash), else the next in turn."""
        if self.partitions == 1:
            return 0
        key = employee_of(records) or idempotency
        if key is None:
            return next(self._turn) % self.partitions
        # CRC-32, not hash(): the same on every process, whatever PYTHONHASHSEED says.
        return zlib.crc32(key.encode()) % self.partitions


def employee_of(records: list[dict[str, Any]]) -> str | None:
    """The Employee ID of the first record, if it has one."""
    employee = records[0].get(EMPLOYEE_ID) if records else None
    return employee if isinstance(employee, str) and employee else None


def partition_of_id(message_id: str, partitions: int) -> int | None:
    """The partition whose stream holds a stream id (None for an id that is not a stream id)."""
    parsed = stream_ids.parse(message_id)
    return None if parsed is None else parsed[1] % partitions
