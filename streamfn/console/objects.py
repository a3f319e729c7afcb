"""The console's reads of the bucket: the newest rows of a model, and one object to download.

streamfn.bucket (boto3) is imported when the bucket is first needed, not with the app: the
ingest's zip function does not ship boto3 (Lambda's Python runtime provides it), and the ingest's
hot path never needs it. An object never changes once written, so the rows read from one are
kept (the newest few objects): the page asks every few seconds and S3 is read once per object.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from streamfn.core.settings import Settings

if TYPE_CHECKING:
    from streamfn.sink.bucket import Bucket

KEPT_OBJECTS = 32
# The keys the console hands out: prediction CSVs and monitoring windows, never anything else.
_OBJECT_KEY = re.compile(
    r"^(predictions/model=[^/]+/date=\d{4}-\d{2}-\d{2}/[0-9]+-[0-9]+_[0-9a-f]+\.csv"
    r"|monitoring/model=[^/]+/date=\d{4}-\d{2}-\d{2}/[0-9]+_v[0-9]+\.json)$"
)


class ObjectsUnavailableError(RuntimeError):
    """S3 cannot answer (the page shows it and tries again)."""


class ObjectMissingError(LookupError):
    """No such object in the bucket."""


def is_object_key(key: str) -> bool:
    """Whether a key names an object the console may serve."""
    return bool(_OBJECT_KEY.match(key))


class ObjectReader:
    """Reads whole objects of PREDICTIONS_BUCKET, keeping the parsed rows of the newest."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bucket: Bucket | None = None
        self._rows: OrderedDict[str, tuple[list[str], list[list[str]]]] = OrderedDict()
        self._lock = threading.Lock()  # called from worker threads

    def bucket(self) -> Bucket:
        """The bucket, its client made on first use."""
        if self._bucket is None:
            from streamfn.sink.bucket import Bucket  # here, not above: see the docstring

            self._bucket = Bucket.from_settings(self.settings)
        return self._bucket

    def body(self, key: str) -> bytes:
        """The whole object."""
        from streamfn.sink.bucket import BucketUnavailableError, is_missing

        try:
            return self.bucket().get(key)
        except BucketUnavailableError as error:
            if is_missing(error):
                raise ObjectMissingError(f"no object {key!r}") from error
            raise ObjectsUnavailableError(str(error)) from error

    def rows(self, key: str) -> tuple[list[str], list[list[str]]]:
        """The header and rows of a prediction CSV object."""
        with self._lock:
            if key in self._rows:
                self._rows.move_to_end(key)
                return self._rows[key]
        table = list(csv.reader(io.StringIO(self.body(key).decode("utf-8"))))
        found = (table[0], table[1:]) if table else ([], [])
        with self._lock:
            self._rows[key] = found
            while len(self._rows) > KEPT_OBJECTS:
                self._rows.popitem(last=False)
        return found
