"""What a sink format is (its suffix and content type, a writer and two readers), and the one
way to get one."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamfn.core.plugins import FORMATS
from streamfn.core.plugins import format_name_of as name_of
from streamfn.models.schemas import ModelSchema
from streamfn.sink.rows import Row

if TYPE_CHECKING:
    import pandas as pd

# (schema, rows, proba labels, shadow, reason codes a row) -> the object's bytes
Encode = Callable[[ModelSchema, Sequence[Row], Sequence[str], bool, int], bytes]
# an object's bytes -> its header and its cells as text, as the CSV of the same rows reads
Table = Callable[[bytes], tuple[list[str], list[list[str]]]]
# objects' bytes (columns may differ between versions) and the columns to keep as text -> one
# frame of their rows, numbers as numbers, a missing cell as NaN
Frame = Callable[[Sequence[bytes], Sequence[str]], "pd.DataFrame"]


@dataclass(frozen=True)
class Format:
    """One format of row objects (its suffix and content type are its registry entry's)."""

    name: str
    encode: Encode
    table: Table
    frame: Frame

    @property
    def suffix(self) -> str:
        """The suffix of its objects' keys."""
        return FORMATS[self.name].suffix

    @property
    def content_type(self) -> str:
        """The content type its objects are written with and served as."""
        return FORMATS[self.name].content_type


def format_named(name: str) -> Format:
    """The format SINK_FORMAT names (KeyError for a name not in FORMATS)."""
    if name not in FORMATS:
        raise KeyError(f"no sink format {name!r}; choose one of {', '.join(FORMATS)}")
    found: Format = importlib.import_module(f"streamfn.sink.formats.{name}").FORMAT
    return found


def format_of(key: str) -> Format | None:
    """The format of a row object, by its key's suffix (None: no format's)."""
    name = name_of(key)
    return None if name is None else format_named(name)
