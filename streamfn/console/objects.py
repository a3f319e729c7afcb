"""The console's reads of the bucket: the newest rows of a model, and one object to download.

streamfn.sink.bucket (boto3) is imported when the bucket is first needed, not with the app: the
ingest's zip function does not ship boto3 (Lambda's Python runtime provides it), and the ingest's
hot path never needs it. An object never changes once written, so the rows read from one are
kept (the newest few objects): the page asks every few seconds and S3 is read once per object.
Rows are read in the object's own format (streamfn.sink.formats), whatever SINK_FORMAT is now.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from streamfn.core import plugins
from streamfn.core.settings import Settings
from streamfn.sink.formats.base import format_of
from streamfn.sink.layout import MONITORING, PREDICTIONS, WINDOW_CONTENT_TYPE, parse_key

if TYPE_CHECKING:
    from streamfn.sink.bucket import Bucket

KEPT_OBJECTS = 32
# What the console hands out: prediction objects and monitoring windows, never anything else.
SERVED = (PREDICTIONS, MONITORING)


class ObjectsUnavailableError(RuntimeError):
    """S3 cannot answer (the page shows it and tries again)."""


class ObjectMissingError(LookupError):
    """No such object in the bucket."""


class RowsUnreadableError(RuntimeError):
    """This process cannot read the object's format (the page says why)."""


def content_type(key: str) -> str | None:
    """The content type of an object the console may serve (a prediction object of a known
    format, a monitoring window), None for any other key."""
    place = parse_key(key)
    if place is None or place.kind not in SERVED:
        return None
    if place.kind == MONITORING:
        return WINDOW_CONTENT_TYPE
    name = plugins.format_name_of(key)
    return None if name is None else plugins.FORMATS[name].content_type


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
        """The header and rows of a prediction object, in its format."""
        with self._lock:
            if key in self._rows:
                self._rows.move_to_end(key)
                return self._rows[key]
        try:
            fmt = format_of(key)
        except ImportError as error:  # pyarrow, for Parquet, is not in the ingest's zip
            raise RowsUnreadableError(f"{key}: {error}") from error
        if fmt is None:
            raise ObjectMissingError(f"{key!r} is not a prediction object")
        found = fmt.table(self.body(key))
        with self._lock:
            self._rows[key] = found
            while len(self._rows) > KEPT_OBJECTS:
                self._rows.popitem(last=False)
        return found
