"""Validation of the POST /predict_stream body against the feature table, on the hot path.

Each record first goes through `_as_sent`, which accepts a record that is canonical already
(canonical keys, canonical category spellings, no nulls: what the producer and most clients
send) and returns it as is, copying nothing. Anything else goes through `_fast_record`, one pass
with no exceptions and no allocation beyond the output dict. Only a record it refuses goes
through `_record_errors`, which finds every problem of that record and words it; that slow path
also decides acceptance on its own, so both fast paths are only ever optimisations. Numbers are
returned as sent: an int stays an int.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

import orjson

from streamfn.features import (
    BY_NAME,
    CANONICAL_KEYS,
    EMPLOYEE_ID,
    FEATURE_NAMES,
    Feature,
    key_form,
)

Record = dict[str, str | float | int]

MAX_ERRORS = 20
MAX_EMPLOYEE_ID_LEN = 128
# Spellings learnt at run time beyond the precomputed ones; bounded so hostile keys cannot
# grow the cache (unknown keys are never cached at all).
MAX_LEARNT_KEYS = 1024
# Field names and values echoed back in errors are cut to this length.
_ECHO_LEN = 200
_PREVIEW_LEN = 40


class BodyError(ValueError):
    """The body cannot be accepted; `status` is 422 or 413, `errors` FastAPI-shaped."""

    status: int
    errors: list[dict[str, Any]]

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid body")
        self.status = status
        self.errors = errors


# What the hot path needs of one canonical key: (name, low, high, allowed). A plain tuple, not
# a NamedTuple: the interpreter's fast unpacking only applies to exact tuples.
# - low, high: floats, so that comparisons with float values stay float-to-float (the fast
#   case); for a category or the Employee ID the range is empty, so that no number passes.
# - allowed: a category's accepted spellings (canonical, lower case) -> canonical spelling;
#   None for a number or the Employee ID.
_Spec = tuple[str, float, float, dict[str, str] | None]


def _spec(name: str) -> _Spec:
    feature = BY_NAME.get(name)
    if feature is None or feature.kind == "category":
        allowed = None if feature is None else _allowed_map(feature)
        return (name, math.inf, -math.inf, allowed)
    return (name, float(feature.low), float(feature.high), None)


def _allowed_map(feature: Feature) -> dict[str, str]:
    return {v: v for v in feature.allowed} | {v.lower(): v for v in feature.allowed}


def _spellings(name: str) -> set[str]:
    """The spellings clients are likely to send, so that the hot path never calls key_form."""
    words = re.split(r"[\s_\-]+", name)
    forms = {name, key_form(name)}
    for case in (lambda w: w, str.lower, str.upper, str.capitalize):
        for sep in (" ", "_", "-", ""):
            forms.add(sep.join(case(w) for w in words))
    # A joined form like "sleephours" does not fold to the canonical key: keep only real ones.
    return {f for f in forms if key_form(f) == key_form(name)}


_SPECS: dict[str, _Spec] = {name: _spec(name) for name in (*FEATURE_NAMES, EMPLOYEE_ID)}
_KEY_CACHE: dict[str, _Spec] = {
    spelling: spec for name, spec in _SPECS.items() for spelling in _spellings(name)
}
_CACHE_LIMIT = len(_KEY_CACHE) + MAX_LEARNT_KEYS


def _resolve_key(key: object) -> _Spec | None:
    """Cache miss: fold the key; remember the spelling if it is a known one and there is room."""
    if type(key) is not str:
        return None
    name = CANONICAL_KEYS.get(key_form(key))
    if name is None:
        return None
    spec = _SPECS[name]
    if len(_KEY_CACHE) < _CACHE_LIMIT:
        _KEY_CACHE[key] = spec
    return spec


def _fast_record(rec: object) -> Record | None:
    """Canonical record, or None if anything is wrong (the caller then asks _record_errors)."""
    if type(rec) is not dict:
        return None
    keys = _KEY_CACHE
    out: dict[str, Any] = {}
    nulls = 0
    for key, value in rec.items():
        spec = keys.get(key)
        if spec is None:
            spec = _resolve_key(key)
            if spec is None:
                return None
        name, low, high, allowed = spec
        vt = type(value)
        # Exact type tests: bool (an int subclass) and str subclasses fall through to refusal.
        if vt is float or vt is int:
            # NaN and +-inf fail the chained comparison, huge ints fail the range.
            if low <= value <= high:
                out[name] = value
            else:
                return None
        elif vt is str:
            if allowed is not None:
                canon = allowed.get(value) or allowed.get(value.lower())
                if canon is None:
                    return None
                out[name] = canon
            elif name == EMPLOYEE_ID and len(value) <= MAX_EMPLOYEE_ID_LEN:
                out[name] = value
            else:
                return None
        elif value is None:
            # A placeholder, so that the length check below still sees duplicate keys.
            out[name] = None
            nulls += 1
        else:
            return None
    # Two keys of the record folded onto one canonical name.
    if len(out) != len(rec):
        return None
    if nulls:
        out = {k: v for k, v in out.items() if v is not None}
    if len(out) == (EMPLOYEE_ID in out):
        return None
    return out


def _as_sent(rec: object) -> Record | None:
    """The record itself when it is canonical already, else what _fast_record makes of it."""
    if type(rec) is not dict:
        return None
    specs = _SPECS  # canonical spellings only
    for key, value in rec.items():
        spec = specs.get(key)
        if spec is None:
            return _fast_record(rec)
        vt = type(value)
        if vt is float or vt is int:
            if not spec[1] <= value <= spec[2]:
                return None
        elif vt is str:
            allowed = spec[3]
            if allowed is not None:
                if allowed.get(value) != value:
                    return _fast_record(rec)  # another spelling of an allowed value, or none
            elif spec[0] != EMPLOYEE_ID or len(value) > MAX_EMPLOYEE_ID_LEN:
                return None
        else:
            return _fast_record(rec)  # a null to drop, or a value of a wrong type
    if len(rec) == (EMPLOYEE_ID in rec):
        return None  # no feature at all
    return rec


# ---------------------------------------------------------------- error path (never hot)


class _ValueProblemError(Exception):
    """One problem with one value: a message and a FastAPI-style error type."""

    def __init__(self, msg: str, type_: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.type = type_


def _echo(text: str) -> str:
    return text if len(text) <= _ECHO_LEN else text[:_ECHO_LEN] + "…"


def _describe(value: object) -> str:
    """A short, safe description of a JSON value for a message (never a full repr)."""
    if value is None:
        return "null"
    if type(value) is bool:
        return f"boolean {str(value).lower()}"
    if type(value) is str:
        shown = value if len(value) <= _PREVIEW_LEN else value[:_PREVIEW_LEN] + "…"
        return f"string {shown!r}"
    if type(value) is int:
        # str() of an int over 4300 digits raises; anything this big is just "huge".
        return f"number {value}" if abs(value) < 10**18 else "a huge integer"
    if type(value) is float:
        return f"number {value!r}"
    if isinstance(value, list):
        return f"array of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"object with {len(value)} key(s)"
    return f"value of type {type(value).__name__}"


def _number(feature: Feature, value: object) -> float | int:
    if type(value) is not int and type(value) is not float:
        raise _ValueProblemError(f"expected a number, got {_describe(value)}", "number_type")
    if type(value) is float and not math.isfinite(value):
        raise _ValueProblemError(f"expected a finite number, got {value!r}", "finite_number")
    if not feature.low <= value <= feature.high:  # type: ignore[operator]
        rng = f"[{feature.low:g}, {feature.high:g}]"
        raise _ValueProblemError(f"{_describe(value)} is out of range {rng}", "out_of_range")
    return value  # type: ignore[return-value]


def _category(feature: Feature, value: object) -> str:
    choices = ", ".join(repr(v) for v in feature.allowed)
    if type(value) is not str:
        msg = f"expected a string, one of {choices}; got {_describe(value)}"
        raise _ValueProblemError(msg, "string_type")
    folded = value.lower()
    for allowed in feature.allowed:
        if allowed.lower() == folded:
            return allowed
    raise _ValueProblemError(f"{_describe(value)} is not one of {choices}", "enum")


def _employee_id(value: object) -> str:
    if type(value) is not str:
        raise _ValueProblemError(f"expected a string, got {_describe(value)}", "string_type")
    if len(value) > MAX_EMPLOYEE_ID_LEN:
        msg = f"at most {MAX_EMPLOYEE_ID_LEN} characters allowed, got {len(value)}"
        raise _ValueProblemError(msg, "string_too_long")
    return value


def _canonical_value(name: str, value: object) -> str | float | int:
    """The canonical value, or _ValueProblemError saying what is wrong (from the feature table)."""
    if name == EMPLOYEE_ID:
        return _employee_id(value)
    feature = BY_NAME[name]
    if feature.kind == "number":
        return _number(feature, value)
    return _category(feature, value)


def _suggestion(key: str) -> str:
    """A "did you mean" for a typo, from the folded forms of every known key."""
    match = difflib.get_close_matches(key_form(key), list(CANONICAL_KEYS), n=1, cutoff=0.6)
    return f"; did you mean {CANONICAL_KEYS[match[0]]!r}?" if match else ""


def _error(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def _field_error(index: int, key: object, msg: str, type_: str) -> dict[str, Any]:
    sent = _echo(key) if isinstance(key, str) else repr(key)
    where = f"record {index}, field {sent!r}"
    return _error(["body", "data", index, sent], f"{where}: {msg}", type_)


def _unknown_key(index: int, key: object) -> dict[str, Any]:
    hint = _suggestion(key) if isinstance(key, str) else ""
    return _field_error(index, key, f"unknown field{hint}", "extra_forbidden")


def _record_errors(index: int, rec: object) -> tuple[Record | None, list[dict[str, Any]]]:
    """Every problem of one record, worded; the canonical record if there is none."""
    if not isinstance(rec, dict):
        msg = f"record {index}: expected an object, got {_describe(rec)}"
        return None, [_error(["body", "data", index], msg, "dict_type")]
    out: Record = {}
    seen: dict[str, object] = {}  # canonical name -> key as sent
    errors: list[dict[str, Any]] = []
    for key, value in rec.items():
        name = CANONICAL_KEYS.get(key_form(key)) if isinstance(key, str) else None
        if name is None:
            errors.append(_unknown_key(index, key))
            continue
        if name in seen:
            msg = f"duplicate field: {seen[name]!r} and {key!r} both mean {name!r}"
            errors.append(_field_error(index, key, msg, "duplicate_field"))
            continue
        seen[name] = key
        if value is None:
            continue
        try:
            out[name] = _canonical_value(name, value)
        except _ValueProblemError as problem:
            errors.append(_field_error(index, key, problem.msg, problem.type))
    if not errors and len(out) == (EMPLOYEE_ID in out):
        msg = f"record {index}: no feature given; at least one of {len(FEATURE_NAMES)} needed"
        errors.append(_error(["body", "data", index], msg, "no_features"))
    return (None if errors else out), errors


def _collect(data: list[Any], out: list[Record]) -> list[Record]:
    """Carry on from the first refused record, gathering up to MAX_ERRORS errors."""
    errors: list[dict[str, Any]] = []
    for index in range(len(out), len(data)):
        rec = _fast_record(data[index])
        if rec is None:
            rec, found = _record_errors(index, data[index])
            errors.extend(found)
            if len(errors) >= MAX_ERRORS and (len(errors) > MAX_ERRORS or index + 1 < len(data)):
                del errors[MAX_ERRORS:]
                msg = f"too many errors: only the first {MAX_ERRORS} are reported"
                errors.append(_error(["body", "data"], msg, "too_many_errors"))
                break
        if rec is not None:
            out.append(rec)
    if errors:
        raise BodyError(422, errors)
    return out


def validate_records(data: object, max_records: int) -> list[Record]:
    """Validate an already-decoded `data` value (the list)."""
    if type(data) is not list:
        msg = f"'data' must be an array of records, got {_describe(data)}"
        raise BodyError(422, [_error(["body", "data"], msg, "list_type")])
    if not data:
        msg = "'data' must hold at least one record"
        raise BodyError(422, [_error(["body", "data"], msg, "too_short")])
    if len(data) > max_records:
        msg = f"too many records: {len(data)} sent, at most {max_records} per request"
        raise BodyError(413, [_error(["body", "data"], msg, "too_many_records")])
    out: list[Record] = []
    append = out.append
    for rec in data:
        canonical = _as_sent(rec)
        if canonical is None:
            return _collect(data, out)
        append(canonical)
    return out


def _envelope_errors(body: dict[Any, Any]) -> list[dict[str, Any]]:
    """Problems with the top level: unknown keys and a missing `data`."""
    errors = []
    for key in body:
        if key != "data":
            sent = _echo(key) if isinstance(key, str) else repr(key)
            msg = f'unknown top-level key {sent!r}; the body must be {{"data": [record, ...]}}'
            errors.append(_error(["body", sent], msg, "extra_forbidden"))
    if "data" not in body:
        msg = "missing key 'data'; the body must be {\"data\": [record, ...]}"
        errors.append(_error(["body", "data"], msg, "missing"))
    return errors


def parse_body(raw: bytes, max_records: int) -> list[Record]:
    """Decode and validate a request body; return the canonical records or raise BodyError."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message carries the reason and "line L column C (char N)".
        error = _error(["body", exc.pos], f"Malformed JSON: {exc}", "json_invalid")
        raise BodyError(422, [error]) from None
    if type(body) is not dict:
        msg = f'the body must be a JSON object {{"data": [record, ...]}}, got {_describe(body)}'
        raise BodyError(422, [_error(["body"], msg, "dict_type")])
    if len(body) != 1 or "data" not in body:
        raise BodyError(422, _envelope_errors(body))
    return validate_records(body["data"], max_records)
