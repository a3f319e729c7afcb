"""Validation of the POST /predict_stream body, compiled per model schema for the hot path.

A `Validator` is built once per schema (a model version's columns) and holds closures over plain
dicts. Each record first goes through `as_sent`, which accepts a record that is canonical already
(canonical keys, canonical category spellings, no nulls: what the producer and most clients send)
and returns it as is, copying nothing. Anything else goes through `fast_record`, one pass with no
exceptions and no allocation beyond the output dict. Only a record it refuses goes through
`record_errors`, which finds every problem of that record and words it; that slow path also decides
acceptance on its own, so both fast paths are only ever optimisations. Numbers are returned as
sent: an int stays an int.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

from streamfn.ingest.refusals import (
    MAX_STRING_LEN,
    BodyError,
    ValueProblemError,
    canonical_value,
    decode_body,
    describe,
    error,
    field_error,
)
from streamfn.models.schemas import Column, ModelSchema
from streamfn.models.seed import EMPLOYEE_ID, key_form

Record = dict[str, str | float | int | bool]

MAX_ERRORS = 20
# A key longer than this is no column's spelling (the longest canonical name has 23 characters):
# it is refused as unknown without being folded or matched for a "did you mean".
MAX_KEY_LEN = 128
# What a body costs to decode grows with the values, arrays and objects it holds, not its bytes:
# 5 MiB of nested or empty arrays takes orjson 0.6-2 s, 5 MiB of one-key objects 0.1 s, a valid
# 10,000-record body 0.03 s; an opened array or object costs about three commas. A valid record
# of n columns brings n commas (between its keys, and after it) and one '{'. A body over
# PRESCAN_BYTES is counted before it is decoded (bytes.count, ~1 ms a pass for 3.5 MB) and
# refused when it holds more than max_records * (n + PRESCAN_ROOM) + PRESCAN_SLACK commas, or
# more than max_records * (1 + PRESCAN_ROOM) + PRESCAN_SLACK of '[' and '{': the room is for
# those inside each record's strings (an Employee ID "Smith, J. [team {3}]"). Smaller bodies
# decode in a few ms whatever they hold, and keep their precise errors.
PRESCAN_BYTES = 64 * 1024
PRESCAN_ROOM = 3
PRESCAN_SLACK = 1024
# Spellings learnt at run time beyond the precomputed ones; bounded so hostile keys cannot
# grow the cache (unknown keys are never cached at all).
MAX_LEARNT_KEYS = 1024
# The Employee ID: an optional string any record may carry, passed through to the CSV.
PASSTHROUGH = Column(EMPLOYEE_ID, "string")

# What the hot path needs of one canonical key: (name, low, high, allowed, flags). A plain
# tuple, not a NamedTuple: the interpreter's fast unpacking only applies to exact tuples.
# - low, high: floats, so that comparisons with float values stay float-to-float; for a string
#   or boolean column the range is empty, so that no number passes.
# - allowed: a category's accepted spellings (canonical, lower case) -> canonical spelling;
#   None for any other column.
# - flags: 0 for a number column, the common case, which then costs one test of a falsy int.
_Spec = tuple[str, float, float, dict[str, str] | None, int]
INTEGER, FREE_STRING, BOOLEAN = 1, 2, 4


def _spec(column: Column) -> _Spec:
    if column.kind in ("number", "integer"):
        flags = INTEGER if column.kind == "integer" else 0
        return (column.name, float(column.low), float(column.high), None, flags)
    if column.kind == "boolean":
        return (column.name, math.inf, -math.inf, None, BOOLEAN)
    if column.categories:
        allowed = {v: v for v in column.categories} | {v.lower(): v for v in column.categories}
        return (column.name, math.inf, -math.inf, allowed, 0)
    return (column.name, math.inf, -math.inf, None, FREE_STRING)


def _spellings(name: str) -> set[str]:
    """The spellings clients are likely to send, so that the hot path never calls key_form."""
    words = re.split(r"[\s_\-]+", name)
    forms = {name, key_form(name)}
    for case in (lambda w: w, str.lower, str.upper, str.capitalize):
        for sep in (" ", "_", "-", ""):
            forms.add(sep.join(case(w) for w in words))
    # A joined form like "sleephours" does not fold to the canonical key: keep only real ones.
    return {f for f in forms if key_form(f) == key_form(name)}


class Validator:
    """The compiled validation of one schema's records."""

    def __init__(self, schema: ModelSchema) -> None:
        self.schema = schema
        columns = (*schema.columns, PASSTHROUGH)
        self.columns: dict[str, Column] = {c.name: c for c in columns}
        self.canonical_keys: dict[str, str] = {key_form(c.name): c.name for c in columns}
        self.features = len(schema.columns)
        self.required = frozenset(c.name for c in schema.columns if c.required)
        self.specs: dict[str, _Spec] = {c.name: _spec(c) for c in columns}
        self.key_cache: dict[str, _Spec] = {
            spelling: spec for name, spec in self.specs.items() for spelling in _spellings(name)
        }
        self.cache_limit = len(self.key_cache) + MAX_LEARNT_KEYS
        self.max_keys = len(self.columns) + MAX_ERRORS
        self.fast_record = self._compile_fast_record()
        self.as_sent = self._compile_as_sent()

    def _resolve_key(self, key: object) -> _Spec | None:
        """Cache miss: fold the key; remember the spelling if it is known and there is room."""
        if type(key) is not str or len(key) > MAX_KEY_LEN:
            return None
        # Another letter case of a known spelling (a dict probe, ~10x cheaper than key_form).
        spec = self.key_cache.get(key.lower())
        if spec is None:
            name = self.canonical_keys.get(key_form(key))
            if name is None:
                return None
            spec = self.specs[name]
        if len(self.key_cache) < self.cache_limit:
            self.key_cache[key] = spec
        return spec

    def _compile_fast_record(self) -> Callable[[object], Record | None]:
        keys = self.key_cache
        resolve = self._resolve_key
        required = self.required
        max_len = MAX_STRING_LEN
        max_fields = len(self.columns)

        def fast_record(rec: object) -> Record | None:
            """Canonical record, or None if anything is wrong (then ask record_errors)."""
            if type(rec) is not dict or len(rec) > max_fields:
                return None
            out: dict[str, Any] = {}
            nulls = 0
            for key, value in rec.items():
                spec = keys.get(key)
                if spec is None:
                    spec = resolve(key)
                    if spec is None:
                        return None
                name, low, high, allowed, flags = spec
                vt = type(value)
                # Exact type tests: bool (an int subclass) and str subclasses fall through.
                if vt is float or vt is int:
                    # NaN and +-inf fail the chained comparison, huge ints fail the range.
                    if not low <= value <= high or (flags and vt is float):
                        return None
                    out[name] = value
                elif vt is str:
                    if allowed is not None:
                        canon = allowed.get(value) or allowed.get(value.lower())
                        if canon is None:
                            return None
                        out[name] = canon
                    elif flags & FREE_STRING and len(value) <= max_len:
                        out[name] = value
                    else:
                        return None
                elif value is None:
                    # A placeholder, so that the length check below still sees duplicate keys.
                    out[name] = None
                    nulls += 1
                elif vt is bool and flags & BOOLEAN:
                    out[name] = value
                else:
                    return None
            # Two keys of the record folded onto one canonical name.
            if len(out) != len(rec):
                return None
            if nulls:
                out = {k: v for k, v in out.items() if v is not None}
            if len(out) == (EMPLOYEE_ID in out):
                return None
            if required and not required <= out.keys():
                return None
            return out

        return fast_record

    def _compile_as_sent(self) -> Callable[[object], Record | None]:
        specs = self.specs  # canonical spellings only
        fast_record = self.fast_record
        required = self.required
        max_len = MAX_STRING_LEN

        def as_sent(rec: object) -> Record | None:
            """The record itself when it is canonical already, else what fast_record makes."""
            if type(rec) is not dict:
                return None
            for key, value in rec.items():
                spec = specs.get(key)
                if spec is None:
                    return fast_record(rec)
                vt = type(value)
                if vt is float or vt is int:
                    if not spec[1] <= value <= spec[2] or (spec[4] and vt is float):
                        return None
                elif vt is str:
                    allowed = spec[3]
                    if allowed is not None:
                        if allowed.get(value) != value:
                            return fast_record(rec)  # another spelling of an allowed value
                    elif not spec[4] & FREE_STRING or len(value) > max_len:
                        return None
                else:
                    return fast_record(rec)  # a null to drop, a boolean, or a wrong type
            if len(rec) == (EMPLOYEE_ID in rec):
                return None  # no feature at all
            if required and not required <= rec.keys():
                return None
            return rec  # type: ignore[return-value]

        return as_sent

    # ------------------------------------------------------------ error path (never hot)

    def _suggestion(self, key: str) -> str:
        """A "did you mean" for a typo, from the folded forms of every known key."""
        known = list(self.canonical_keys)
        match = difflib.get_close_matches(key_form(key), known, n=1, cutoff=0.6)
        return f"; did you mean {self.canonical_keys[match[0]]!r}?" if match else ""

    def _unknown_key(self, index: int, key: object) -> dict[str, Any]:
        short = isinstance(key, str) and len(key) <= MAX_KEY_LEN
        hint = self._suggestion(key) if short else ""  # type: ignore[arg-type]
        return field_error(index, key, f"unknown field{hint}", "extra_forbidden")

    def _name_of(self, key: object) -> str | None:
        """The canonical name a key spells, or None (never folds a key over MAX_KEY_LEN)."""
        if not isinstance(key, str) or len(key) > MAX_KEY_LEN:
            return None
        return self.canonical_keys.get(key_form(key))

    def record_errors(
        self, index: int, rec: object, room: int = MAX_ERRORS + 1
    ) -> tuple[Record | None, list[dict[str, Any]]]:
        """The problems of one record, worded, at most `room` of them (the caller reports no more
        than that); the canonical record if there is none."""
        if not isinstance(rec, dict):
            msg = f"record {index}: expected an object, got {describe(rec)}"
            return None, [error(["body", "data", index], msg, "dict_type")]
        if len(rec) > self.max_keys:
            # Each column at most once: past columns + MAX_ERRORS keys, the record has more
            # errors than are ever reported, so it is refused whole without reading its keys.
            msg = (f"record {index}: {len(rec)} fields sent; the model has {len(self.columns)} "
                   f"(with {EMPLOYEE_ID!r}), each at most once")  # fmt: skip
            return None, [error(["body", "data", index], msg, "too_many_fields")]
        out: Record = {}
        seen: dict[str, object] = {}  # canonical name -> key as sent
        refused: set[str] = set()  # canonical names whose value was wrong
        errors: list[dict[str, Any]] = []
        for key, value in rec.items():
            if len(errors) >= room:
                return None, errors  # enough to fill the report: stop reading (and suggesting)
            name = self._name_of(key)
            if name is None:
                errors.append(self._unknown_key(index, key))
                continue
            if name in seen:
                msg = f"duplicate field: {seen[name]!r} and {key!r} both mean {name!r}"
                errors.append(field_error(index, key, msg, "duplicate_field"))
                continue
            seen[name] = key
            if value is None:
                continue
            try:
                out[name] = canonical_value(self.columns[name], value)
            except ValueProblemError as problem:
                refused.add(name)
                errors.append(field_error(index, key, problem.msg, problem.type))
        for name in sorted(self.required - out.keys() - refused):
            why = "is null" if name in seen else "is missing"
            msg = f"required by the model and {why}"
            errors.append(field_error(index, seen.get(name, name), msg, "missing"))
        if not errors and len(out) == (EMPLOYEE_ID in out):
            msg = f"record {index}: no feature given; at least one of {self.features} needed"
            errors.append(error(["body", "data", index], msg, "no_features"))
        return (None if errors else out), errors

    def _collect(self, data: list[Any], out: list[Record]) -> list[Record]:
        """Carry on from the first refused record, gathering up to MAX_ERRORS errors."""
        errors: list[dict[str, Any]] = []
        for index in range(len(out), len(data)):
            rec = self.fast_record(data[index])
            if rec is None:
                room = MAX_ERRORS + 1 - len(errors)  # one more than fits: "too many errors"
                rec, found = self.record_errors(index, data[index], room)
                errors.extend(found)
                if len(errors) >= MAX_ERRORS and (
                    len(errors) > MAX_ERRORS or index + 1 < len(data)
                ):
                    del errors[MAX_ERRORS:]
                    msg = f"too many errors: only the first {MAX_ERRORS} are reported"
                    errors.append(error(["body", "data"], msg, "too_many_errors"))
                    break
            if rec is not None:
                out.append(rec)
        if errors:
            raise BodyError(422, errors)
        return out

    def validate_records(self, data: object, max_records: int) -> list[Record]:
        """Validate an already-decoded `data` value (the list)."""
        if type(data) is not list:
            msg = f"'data' must be an array of records, got {describe(data)}"
            raise BodyError(422, [error(["body", "data"], msg, "list_type")])
        if not data:
            msg = "'data' must hold at least one record"
            raise BodyError(422, [error(["body", "data"], msg, "too_short")])
        if len(data) > max_records:
            msg = f"too many records: {len(data)} sent, at most {max_records} per request"
            raise BodyError(413, [error(["body", "data"], msg, "too_many_records")])
        out: list[Record] = []
        append = out.append
        as_sent = self.as_sent
        for rec in data:
            canonical = as_sent(rec)
            if canonical is None:
                return self._collect(data, out)
            append(canonical)
        return out

    def parse_body(self, raw: bytes, max_records: int) -> list[Record]:
        """Decode and validate a request body; the canonical records, or BodyError."""
        if len(raw) > PRESCAN_BYTES:
            self._prescan(raw, max_records)
        return self.validate_records(decode_body(raw), max_records)

    def _prescan(self, raw: bytes, max_records: int) -> None:
        """Refuse (413) a big body holding more values, arrays and objects than max_records
        records can, before it costs a decode."""
        commas = raw.count(b",")
        opened = raw.count(b"[") + raw.count(b"{")
        most_commas = max_records * (len(self.columns) + PRESCAN_ROOM) + PRESCAN_SLACK
        most_opened = max_records * (1 + PRESCAN_ROOM) + PRESCAN_SLACK
        if commas > most_commas or opened > most_opened:
            msg = (f"the body holds more values, arrays and objects than {max_records} records "
                   f"of {len(self.columns)} fields can ({commas} ',' of at most {most_commas}, "
                   f"{opened} '[' and '{{' of at most {most_opened}); a record is one object of "
                   "numbers, strings, booleans and nulls")  # fmt: skip
            raise BodyError(413, [error(["body"], msg, "too_many_values")])
