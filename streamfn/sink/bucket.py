"""The predictions bucket on S3-compatible storage: whole-object access (its keys are
streamfn.sink.layout's).

The infer function writes through it, and `streamfn results`, `streamfn up` and the benchmark
read through it, so every one works the same against MinIO, AWS S3 and the embedded server. Each
object is one PutObject: it exists whole or not at all. Every failure is one type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.aws import aws_session
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


def make_s3_client(settings: Settings) -> S3Client:
    """An S3 client for the settings' S3 endpoint (or AWS), with timeouts that surface an outage
    fast."""
    endpoint = settings.s3_endpoint
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

    def put(
        self, key: str, body: bytes, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> str:
        """Write one whole object (a single PutObject, with its user metadata: `x-amz-meta-*`
        headers, which PutObject's permission covers) and return its s3:// address."""
        extra = {"Metadata": dict(metadata)} if metadata else {}
        with _unavailable(f"write {self.url(key)}"):
            self.client.put_object(Bucket=self.name, Key=key, Body=body, ContentType=content_type,
                                   **extra)  # fmt: skip
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
