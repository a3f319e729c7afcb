"""The CSV output of SPEC section 6: rows encoded on the hot path, written whole to S3.

Rows are encoded by the C `csv` writer from prebuilt lists (RFC 4180: CRLF line ends, fields
quoted only when needed), so that any Employee ID survives a round trip. Times are written as
ISO-8601 UTC with milliseconds. Each object is one PutObject: it exists whole or not at all.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from streamfn.aws import aws_session
from streamfn.config import Settings
from streamfn.features import CLASS_LABELS, EMPLOYEE_ID, FEATURE_NAMES

# boto3 builds its clients at run time; without the optional stubs the type is Any.
S3Client = Any

CSV_COLUMNS: tuple[str, ...] = (
    "message_id",
    "record_index",
    "model",
    "registered_model",
    "model_version",
    "prediction",
    "prediction_label",
    "received_at",
    "predicted_at",
    "imputed",
    EMPLOYEE_ID,
    *FEATURE_NAMES,
)
CONTENT_TYPE = "text/csv; charset=utf-8"
KEY_PREFIX = "predictions/"
IMPUTED_SEPARATOR = "|"
# 64 bits of SHA-256: collisions are negligible for any number of batches a bucket will hold.
_DIGEST_HEX = 16
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_STREAM_ID = re.compile(r"(\d+)-(\d+)")
# An outage must surface in seconds: a short connect timeout, one retry, a bounded read.
_CONNECT_TIMEOUT_S = 2.0
_READ_TIMEOUT_S = 10.0
_MAX_ATTEMPTS = 2
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class SinkUnavailableError(RuntimeError):
    """The storage did not take or answer a request: outage, timeout, or any S3 error."""


class Row(NamedTuple):
    """One predicted record; a NamedTuple so that building thousands per batch stays cheap."""

    message_id: str
    record_index: int
    model: str
    registered_model: str
    model_version: str
    prediction: int
    received_at: int  # epoch ms
    predicted_at: int  # epoch ms
    record: Mapping[str, object]  # canonical: feature names and optionally "Employee ID"


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds, e.g. 2026-11-26T07:19:29.123Z."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _cells(rows: Sequence[Row]) -> Iterator[list[object]]:
    # A batch shares a few timestamps: format each distinct one once.
    stamps: dict[int, str] = {}
    labels = CLASS_LABELS
    names = FEATURE_NAMES
    # Plain unpacking: cheaper than NamedTuple attribute access on this path.
    for message_id, index, model, registered, version, klass, received, predicted, record in rows:
        if not 0 <= klass < len(labels):
            raise ValueError(f"prediction {klass!r} of {message_id}[{index}] is not a class")
        received_s = stamps.get(received) or stamps.setdefault(received, iso_ms(received))
        predicted_s = stamps.get(predicted) or stamps.setdefault(predicted, iso_ms(predicted))
        get = record.get
        # None (absent or null) is written by the csv module as an empty cell.
        features = [get(name) for name in names]
        imputed = ""
        if None in features:
            imputed = IMPUTED_SEPARATOR.join(
                n for n, v in zip(names, features, strict=True) if v is None
            )
        yield [
            message_id, index, model, registered, version, klass, labels[klass],
            received_s, predicted_s, imputed, get(EMPLOYEE_ID), *features,
        ]  # fmt: skip


def encode_csv(rows: Sequence[Row]) -> bytes:
    """Header plus one CSV line per row, UTF-8, columns as CSV_COLUMNS."""
    buffer = io.StringIO()
    # CRLF (RFC 4180, the csv default) is also what makes the writer quote a lone CR in a field.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_cells(rows))
    return buffer.getvalue().encode("utf-8")


def _id_order(message_id: str) -> tuple[int, int, int, str]:
    # Stream ids sort by (ms, seq) as numbers: "9-0" comes before "10-0".
    match = _STREAM_ID.fullmatch(message_id)
    if match is None:
        return (1, 0, 0, message_id)
    return (0, int(match[1]), int(match[2]), message_id)


def object_key(api_name: str, day: datetime.date, message_ids: Sequence[str]) -> str:
    """predictions/model=<api>/date=<day>/<first id>_<hash of all ids>.csv, order-insensitive."""
    if not api_name or _UNSAFE_KEY_CHARS.search(api_name):
        raise ValueError(f"model name {api_name!r} cannot be a key partition")
    ids = sorted(set(message_ids), key=_id_order)
    if not ids:
        raise ValueError("an object needs at least one message id")
    # JSON of the sorted list is unambiguous whatever characters the ids contain.
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:_DIGEST_HEX]
    first = _UNSAFE_KEY_CHARS.sub("_", ids[0])[:64]
    # strftime, not isoformat: a datetime passed as `day` must still give a bare date.
    return f"{KEY_PREFIX}model={api_name}/date={day.strftime('%Y-%m-%d')}/{first}_{digest}.csv"


def make_s3_client(settings: Settings) -> S3Client:
    """An S3 client for AWS_ENDPOINT_URL_S3 (or AWS), with timeouts that surface an outage fast."""
    endpoint = settings.AWS_ENDPOINT_URL_S3
    # Other S3 servers (older MinIO, Ceph) refuse boto3's default CRC headers; AWS takes them.
    checksums = "when_required" if endpoint else "when_supported"
    config = Config(
        connect_timeout=_CONNECT_TIMEOUT_S,
        read_timeout=_READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": _MAX_ATTEMPTS},
        # SigV4 everywhere: MinIO and every AWS region accept it, presigned URLs included.
        signature_version="s3v4",
        # MinIO and moto serve buckets under the path; AWS itself prefers virtual hosts.
        s3={"addressing_style": "path" if endpoint else "auto"},
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
    )
    return aws_session(settings).client("s3", endpoint_url=endpoint, config=config)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def _unavailable(action: str) -> Iterator[None]:
    """Turn any boto3 failure inside the block into SinkUnavailableError."""
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise SinkUnavailableError(f"cannot {action}: {error}") from error


class S3Sink:
    """Writes, checks and lists prediction objects in one bucket; every failure is one type."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Sink:
        """A sink on PREDICTIONS_BUCKET through make_s3_client."""
        return cls(make_s3_client(settings), settings.PREDICTIONS_BUCKET)

    def url(self, key: str) -> str:
        """The s3:// address of a key of this bucket."""
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes) -> str:
        """Write one whole object (a single PutObject) and return its s3:// address."""
        with _unavailable(f"write {self.url(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=CONTENT_TYPE)
        return self.url(key)

    def get(self, key: str) -> bytes:
        """The whole body of one object."""
        with _unavailable(f"read {self.url(key)}"):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        """Whether the object exists (HEAD); False on 404."""
        with _unavailable(f"check {self.url(key)}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if _error_code(error) in _MISSING:
                    return False
                raise
        return True

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists already (idempotent, safe against a race)."""
        with _unavailable(f"check bucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as error:
                if _error_code(error) not in _MISSING:
                    raise
        region = self.client.meta.region_name
        extra: dict[str, Any] = {}
        # us-east-1 refuses an explicit LocationConstraint; every other region requires one.
        if region and region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with _unavailable(f"create bucket {self.bucket}"):
            try:
                self.client.create_bucket(Bucket=self.bucket, **extra)
            except ClientError as error:
                # Another process created it between our HEAD and CREATE.
                if _error_code(error) != "BucketAlreadyOwnedByYou":
                    raise

    def list_objects(self, prefix: str = KEY_PREFIX) -> list[dict[str, Any]]:
        """Every object under prefix as {key, size, last_modified}, across all pages."""
        paginator = self.client.get_paginator("list_objects_v2")
        with _unavailable(f"list {self.url(prefix)}"):
            return [
                {"key": item["Key"], "size": item["Size"], "last_modified": item["LastModified"]}
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
