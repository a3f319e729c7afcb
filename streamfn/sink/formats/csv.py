"""CSV row objects (SINK_FORMAT=csv, the seed's format).

Rows are encoded by the C `csv` writer from prebuilt lists (RFC 4180: CRLF line ends, fields
quoted only when needed), so that any Employee ID survives a round trip. Times are written as
ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamfn.core.clock import iso_ms
from streamfn.models.schemas import ModelSchema
from streamfn.sink.formats.base import Format
from streamfn.sink.rows import TIME_COLUMNS, Row, columns, values

if TYPE_CHECKING:
    import pandas as pd

LINE_END = b"\r\n"


def encode(
    schema: ModelSchema,
    rows: Sequence[Row],
    proba_labels: Sequence[str] = (),
    shadow: bool = False,
    reasons: int = 0,
) -> bytes:
    """Header plus one CSV line per row, UTF-8."""
    buffer = io.StringIO()
    # CRLF (RFC 4180, the csv default) is also what makes the writer quote a lone CR in a field.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns(schema, proba_labels, shadow, reasons))
    # A batch shares a few timestamps: format each distinct one once.
    stamps: dict[int, str] = {}

    def stamp(at_ms: int) -> str:
        return stamps.get(at_ms) or stamps.setdefault(at_ms, iso_ms(at_ms))

    # None (absent or null) is written by the csv module as an empty cell.
    writer.writerows(values(schema, rows, stamp, reasons))
    return buffer.getvalue().encode("utf-8")


def table(body: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV object."""
    found = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    return (found[0], found[1:]) if found else ([], [])


def frame(bodies: Sequence[bytes], text: Sequence[str]) -> pd.DataFrame:
    """The rows of CSV objects: those with the same header parsed at once (per object,
    pandas' set-up cost dominates small objects), `text` columns as text, times as UTC
    datetimes."""
    import pandas as pd

    by_header: dict[bytes, list[bytes]] = {}
    for body in bodies:
        by_header.setdefault(body.partition(LINE_END)[0], []).append(body)
    frames = []
    for header, group in by_header.items():
        # Each body ends with a line end: the rows follow one another.
        joined = b"".join([header, LINE_END, *(b.partition(LINE_END)[2] for b in group)])
        frames.append(pd.read_csv(io.BytesIO(joined), dtype=dict.fromkeys(text, str),
                                  keep_default_na=False, na_values=[""]))  # fmt: skip
    found = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    for name in TIME_COLUMNS:
        if name in found:
            found[name] = pd.to_datetime(found[name], utc=True, format="ISO8601")
    return found


FORMAT = Format("csv", encode, table, frame)
