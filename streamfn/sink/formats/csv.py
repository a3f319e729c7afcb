"""CSV row objects (SINK_FORMAT=csv, the seed's format).

Rows are encoded by the C `csv` writer from prebuilt lists (RFC 4180: CRLF line ends, fields
quoted only when needed), so that any Employee ID survives a round trip. Times are written as
ISO-8601 UTC with milliseconds.

The objects are offered for download, and a spreadsheet runs a cell that starts with `=`, `+`,
`-`, `@`, a tab or a carriage return as a formula (`=HYPERLINK(...)` sent as an Employee ID).
So a text cell starting so is written behind a `'` (OWASP's advice for CSV injection), which
spreadsheets show as text and hide; a number is never touched (-1.5 stays a number), and a text
cell already starting with quotes before such a character gets one more, so that reading strips
exactly one and every value round-trips. The readers here (`table`, `frame`) strip it; Parquet
is typed and never escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from streamfn.core.clock import iso_ms
from streamfn.models.schemas import ModelSchema
from streamfn.models.seed import EMPLOYEE_ID
from streamfn.sink.formats.base import Format
from streamfn.sink.rows import TIME_COLUMNS, Row, columns, values

if TYPE_CHECKING:
    import pandas as pd

LINE_END = b"\r\n"
# What a spreadsheet reads as the start of a formula; the quote that makes a cell text.
FORMULA_STARTS = frozenset("=+-@\t\r")
QUOTE = "'"
_RISKY = FORMULA_STARTS | {QUOTE}


def escaped(cell: str) -> str:
    """A text cell as written: behind a quote if a spreadsheet would run it as a formula."""
    if cell[:1] in _RISKY and cell.lstrip(QUOTE)[:1] in FORMULA_STARTS:
        return QUOTE + cell
    return cell


def unescaped(cell: str) -> str:
    """A text cell as it was before `escaped`."""
    if cell[:1] == QUOTE and cell.lstrip(QUOTE)[:1] in FORMULA_STARTS:
        return cell[1:]
    return cell


def _free_text(schema: ModelSchema, header: Sequence[str]) -> list[int]:
    """Where a row's cells may hold text nobody vetted: the Employee ID, string inputs (those
    with a category that could start a formula), the predictions, and the names of imputed
    inputs where one could. Every other cell is a number, a time or a name of ours."""
    risky = {EMPLOYEE_ID, "prediction", "champion_prediction"}
    risky |= {c.name for c in schema.columns if c.kind == "string" and (
        not c.categories or any(escaped(v) != v for v in c.categories))}  # fmt: skip
    # Without labels, a prediction's label is its class, whatever the model gives.
    if not schema.labels or any(escaped(v) != v for v in schema.labels.values()):
        risky.add("prediction_label")
    if any(escaped(c.name) != c.name for c in schema.columns):  # a reason names an input too
        risky |= {"imputed", *(name for name in header if name.startswith("reason_"))}
    return [i for i, name in enumerate(header) if name in risky]


def _escaping(rows: Iterable[list[Any]], at: Sequence[int]) -> Iterator[list[Any]]:
    for cells in rows:
        for i in at:
            cell = cells[i]
            if type(cell) is str and cell[:1] in _RISKY:
                cells[i] = escaped(cell)
        yield cells


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
    header = columns(schema, proba_labels, shadow, reasons)
    writer.writerow([escaped(name) for name in header])
    # A batch shares a few timestamps: format each distinct one once.
    stamps: dict[int, str] = {}

    def stamp(at_ms: int) -> str:
        return stamps.get(at_ms) or stamps.setdefault(at_ms, iso_ms(at_ms))

    # None (absent or null) is written by the csv module as an empty cell.
    writer.writerows(_escaping(values(schema, rows, stamp, reasons), _free_text(schema, header)))
    return buffer.getvalue().encode("utf-8")


def table(body: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV object (its cells as they were before `escaped`)."""
    found = [[unescaped(c) for c in cells] for cells in csv.reader(io.StringIO(body.decode()))]
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
    found.columns = [unescaped(name) for name in found.columns]
    for name in found.select_dtypes(include="object").columns:
        found[name] = found[name].map(lambda c: unescaped(c) if isinstance(c, str) else c)
    for name in TIME_COLUMNS:
        if name in found:
            found[name] = pd.to_datetime(found[name], utc=True, format="ISO8601")
    return found


FORMAT = Format("csv", encode, table, frame)
