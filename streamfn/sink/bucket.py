"""The predictions bucket on S3-compatible storage: its layout, and whole-object access.

Keys are Hive-partitioned, `<kind>/model=<api name>/date=<YYYY-MM-DD>/<name>`, one object per model
per batch, named after the messages it holds.

The infer function writes through it, and `streamfn results`, `streamfn up` and the benchmark
read through it, so every one works the same against MinIO, AWS S3 and the embedded server. Each
object is one PutObject: it exists whole or not at all. Every failure is one type.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core import stream_ids
from streamfn.core.aws import aws_session
from streamfn.core.message_ids import key_part
from streamfn.core.settings import Settings

# boto3 builds its clients at run time; without the optional stubs the type is Any.
S3Client = Any

# An outage must surface in seconds: a short connect timeout, one retry, a bounded read.
_CONNECT_TIMEOUT_S = 2.0
_READ_TIMEOUT_S = 10.0
_MAX_ATTEMPTS = 2
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class BucketUnavailableError(RuntimeError):
    """The storage did not take or answer a request: outage, timeout, or any S3 error."""


# 64 bits of SHA-256: collisions are negligible for any number of batches a bucket will hold.
_DIGEST_HEX = 16
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ObjectKind:
    """A kind of object in the bucket: where its keys start, how they end, what they hold."""

    prefix: str
    suffix: str
    content_type: str


PREDICTIONS = ObjectKind("predictions/", ".csv", "text/csv; charset=utf-8")
SHADOW = ObjectKind("shadow/", ".csv", "text/csv; charset=utf-8")
MONITORING = ObjectKind("monitoring/", ".json", "application/json")


def object_key(kind: ObjectKind, api_name: str, day: dt.date, message_ids: Sequence[str]) -> str:
    """<prefix>model=<api>/date=<day>/<first id>_<hash of all ids><suffix>, order-insensitive."""
    if not api_name or _UNSAFE_KEY_CHARS.search(api_name):
        raise ValueError(f"model name {api_name!r} cannot be a key partition")
    ids = sorted(set(message_ids), key=stream_ids.order_any)
    if not ids:
        raise ValueError("an object needs at least one message id")
    # JSON of the sorted list is unambiguous whatever characters the ids contain.
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:_DIGEST_HEX]
    first = key_part(ids[0])
    # strftime, not isoformat: a datetime passed as `day` must still give a bare date.
    partition = f"model={api_name}/date={day.strftime('%Y-%m-%d')}"
    return f"{kind.prefix}{partition}/{first}_{digest}{kind.suffix}"


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


def is_missing(error: BucketUnavailableError) -> bool:
    """Whether a failed read failed because the object (or the bucket) does not exist."""
    cause = error.__cause__
    return isinstance(cause, ClientError) and _error_code(cause) in _MISSING


@contextmanager
def _unavailable(action: str) -> Iterator[None]:
    """Turn any boto3 failure inside the block into BucketUnavailableError."""
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise BucketUnavailableError(f"cannot {action}: {error}") from error


class Bucket:
    """One bucket: whole-object writes and reads, existence checks, listings."""

    def __init__(self, client: S3Client, name: str) -> None:
        self.client = client
        self.name = name

    @classmethod
    def from_settings(cls, settings: Settings) -> Bucket:
        """PREDICTIONS_BUCKET through make_s3_client."""
        return cls(make_s3_client(settings), settings.PREDICTIONS_BUCKET)

    def url(self, key: str) -> str:
        """The s3:// address of a key of this bucket."""
        return f"s3://{self.name}/{key}"

    def key_of(self, url: str) -> str:
        """The key of an s3:// address of this bucket."""
        return url.removeprefix(self.url(""))

    def put(self, key: str, body: bytes, content_type: str) -> str:
        """Write one whole object (a single PutObject) and return its s3:// address."""
        with _unavailable(f"write {self.url(key)}"):
            self.client.put_object(Bucket=self.name, Key=key, Body=body, ContentType=content_type)
        return self.url(key)

    def get(self, key: str) -> bytes:
        """The whole body of one object."""
        with _unavailable(f"read {self.url(key)}"):
            return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        """Whether the object exists (HEAD); False on 404."""
        with _unavailable(f"check {self.url(key)}"):
            try:
                self.client.head_object(Bucket=self.name, Key=key)
            except ClientError as error:
                if _error_code(error) in _MISSING:
                    return False
                raise
        return True

    def ensure(self) -> None:
        """Create the bucket unless it exists already (idempotent, safe against a race)."""
        with _unavailable(f"check bucket {self.name}"):
            try:
                self.client.head_bucket(Bucket=self.name)
                return
            except ClientError as error:
                if _error_code(error) not in _MISSING:
                    raise
        region = self.client.meta.region_name
        extra: dict[str, Any] = {}
        # us-east-1 refuses an explicit LocationConstraint; every other region requires one.
        if region and region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with _unavailable(f"create bucket {self.name}"):
            try:
                self.client.create_bucket(Bucket=self.name, **extra)
            except ClientError as error:
                # Another process created it between our HEAD and CREATE.
                if _error_code(error) != "BucketAlreadyOwnedByYou":
                    raise

    def list_objects(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under prefix as {key, size, last_modified}, across all pages."""
        paginator = self.client.get_paginator("list_objects_v2")
        with _unavailable(f"list {self.url(prefix)}"):
            return [
                {"key": item["Key"], "size": item["Size"], "last_modified": item["LastModified"]}
                for page in paginator.paginate(Bucket=self.name, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
