"""The batch events the infer function takes, and its answer: one adapter per event shape.

The poller sends an SQS-shaped event (one record per stream entry, its id as `messageId`), so the
same handler also runs behind Lambda's own event source mappings. Each shape says where a record's
id, body and delivery count are, and how a failure names the record (`itemIdentifier`); the
handler sees only `EventRecord`s and never the shape.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

# `eventSource` of the poller's records (SQS's shape, read from a Redis Stream).
REDIS_SOURCE = "redis:streams"


class ItemFailure(TypedDict):
    """One failed record, by the Lambda partial-batch convention."""

    itemIdentifier: str


class BatchResponse(TypedDict):
    """What the infer function answers: the records to retry."""

    batchItemFailures: list[ItemFailure]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One record of a batch event, whatever its shape."""

    item_id: str  # what a failure names: a stream id, an SQS message id, a Kinesis sequence
    body: bytes | str  # the JSON of a stream entry: model, data, received_at
    deliveries: int  # how many times it has been delivered (1 when the source does not say)
    # The message's id where its state and rows are kept, and what ingest answered: the item id,
    # except on Kinesis, whose sequence numbers are unique only within a shard.
    message_id: str = ""

    def __post_init__(self) -> None:
        if not self.message_id:
            object.__setattr__(self, "message_id", self.item_id)


def kinesis_message_id(shard_id: str, sequence_number: str) -> str:
    """A Kinesis record's message id: `<shard id>:<sequence number>`, the shape of the
    `eventID` Lambda gives it (and what ingest answers after PutRecords)."""
    return f"{shard_id}:{sequence_number}"


def _sqs_record(record: dict[str, Any]) -> EventRecord:
    attributes = record.get("attributes") or {}
    count = str(attributes.get("ApproximateReceiveCount", "1"))
    return EventRecord(
        str(record.get("messageId", "")),
        record.get("body", ""),
        int(count) if count.isdigit() else 1,
    )


def _kinesis_record(record: dict[str, Any]) -> EventRecord:
    kinesis = record.get("kinesis") or {}
    try:
        body: bytes | str = base64.b64decode(kinesis.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        body = ""  # the handler refuses it as a message that is not JSON
    sequence = str(kinesis.get("sequenceNumber", ""))
    return EventRecord(sequence, body, 1, str(record.get("eventID") or sequence))


# eventSource -> adapter. Records of another source are read as SQS-shaped.
ADAPTERS: dict[str, Callable[[dict[str, Any]], EventRecord]] = {
    REDIS_SOURCE: _sqs_record,
    "aws:sqs": _sqs_record,
    "aws:kinesis": _kinesis_record,
}


def records_of(event: dict[str, Any]) -> list[EventRecord]:
    """The records of a batch event of any known shape."""
    records = event.get("Records") or []
    return [ADAPTERS.get(r.get("eventSource", ""), _sqs_record)(r) for r in records]


def sqs_shaped(entries: Iterable[tuple[str, str, int]], source_arn: str) -> dict[str, Any]:
    """The poller's event: (stream id, body, deliveries) per entry, in SQS's shape."""
    return {
        "Records": [
            {
                "messageId": entry_id,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(deliveries),
                    "SentTimestamp": entry_id.partition("-")[0],
                },
                "eventSource": REDIS_SOURCE,
                "eventSourceARN": source_arn,
            }
            for entry_id, body, deliveries in entries
        ]
    }


def sqs_event(messages: Iterable[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event for messages as ReceiveMessage returns them (with their attributes)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes") or {},
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def kinesis_event(
    records: Iterable[dict[str, Any]], shard_id: str, stream_arn: str, region: str
) -> dict[str, Any]:
    """Lambda's Kinesis event for one shard's records as GetRecords returns them."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": kinesis_message_id(shard_id, r["SequenceNumber"]),
                "eventName": "aws:kinesis:record",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def response(failed: Iterable[str]) -> BatchResponse:
    """The answer naming the records to retry."""
    return {"batchItemFailures": [{"itemIdentifier": item_id} for item_id in failed]}
