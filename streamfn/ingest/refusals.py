"""Why a request body is refused: the error, its FastAPI-shaped entries, and the words for each
problem of one value. Only refused records come here: none of it is on the hot path."""

from __future__ import annotations

import math
from typing import Any

import orjson

from streamfn.api.responses import BodyError
from streamfn.models.schemas import Column
from streamfn.models.seed import EMPLOYEE_ID

MAX_STRING_LEN = 128  # a free string (the Employee ID, a string column without categories)
# Field names and values echoed back in errors are cut to this length.
_ECHO_LEN = 200
_PREVIEW_LEN = 40


class ValueProblemError(Exception):
    """One problem with one value: a message and a FastAPI-style error type."""

    def __init__(self, msg: str, type_: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.type = type_


def echo(text: str) -> str:
    return text if len(text) <= _ECHO_LEN else text[:_ECHO_LEN] + "…"


def describe(value: object) -> str:
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


def _number(column: Column, value: object) -> float | int:
    if type(value) is not int and type(value) is not float:
        raise ValueProblemError(f"expected a number, got {describe(value)}", "number_type")
    if type(value) is float and not math.isfinite(value):
        raise ValueProblemError(f"expected a finite number, got {value!r}", "finite_number")
    if column.kind == "integer" and type(value) is float:
        if not value.is_integer():
            raise ValueProblemError(f"expected an integer, got {describe(value)}", "int_type")
        value = int(value)  # JSON's 3.0 is an integer too
    if not column.low <= value <= column.high:  # type: ignore[operator]
        rng = f"[{column.low:g}, {column.high:g}]"
        raise ValueProblemError(f"{describe(value)} is out of range {rng}", "out_of_range")
    return value  # type: ignore[return-value]


def _string(column: Column, value: object) -> str:
    choices = ", ".join(repr(v) for v in column.categories)
    if type(value) is not str:
        expected = f"a string, one of {choices};" if choices else "a string,"
        raise ValueProblemError(f"expected {expected} got {describe(value)}", "string_type")
    if not column.categories:
        if len(value) > MAX_STRING_LEN:
            msg = f"at most {MAX_STRING_LEN} characters allowed, got {len(value)}"
            raise ValueProblemError(msg, "string_too_long")
        return value
    folded = value.lower()
    for allowed in column.categories:
        if allowed.lower() == folded:
            return allowed
    raise ValueProblemError(f"{describe(value)} is not one of {choices}", "enum")


def _boolean(value: object) -> bool:
    if type(value) is not bool:
        raise ValueProblemError(f"expected true or false, got {describe(value)}", "bool_type")
    return value


def canonical_value(column: Column, value: object) -> str | float | int | bool:
    """The canonical value, or ValueProblemError saying what is wrong with it."""
    if column.kind in ("number", "integer"):
        return _number(column, value)
    if column.kind == "boolean":
        return _boolean(value)
    if column.name == EMPLOYEE_ID and type(value) is not str:
        raise ValueProblemError(f"expected a string, got {describe(value)}", "string_type")
    return _string(column, value)


def error(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def field_error(index: int, key: object, msg: str, type_: str) -> dict[str, Any]:
    sent = echo(key) if isinstance(key, str) else repr(key)
    where = f"record {index}, field {sent!r}"
    return error(["body", "data", index, sent], f"{where}: {msg}", type_)


def envelope_errors(body: dict[Any, Any]) -> list[dict[str, Any]]:
    """Problems with the top level: unknown keys and a missing `data`."""
    errors = []
    for key in body:
        if key != "data":
            sent = echo(key) if isinstance(key, str) else repr(key)
            msg = f'unknown top-level key {sent!r}; the body must be {{"data": [record, ...]}}'
            errors.append(error(["body", sent], msg, "extra_forbidden"))
    if "data" not in body:
        msg = "missing key 'data'; the body must be {\"data\": [record, ...]}"
        errors.append(error(["body", "data"], msg, "missing"))
    return errors


def decode_body(raw: bytes) -> object:
    """The `data` of a request body, or BodyError for anything but {"data": …}."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message carries the reason and "line L column C (char N)".
        malformed = error(["body", exc.pos], f"Malformed JSON: {exc}", "json_invalid")
        raise BodyError(422, [malformed]) from None
    if type(body) is not dict:
        msg = f'the body must be a JSON object {{"data": [record, ...]}}, got {describe(body)}'
        raise BodyError(422, [error(["body"], msg, "dict_type")])
    if len(body) != 1 or "data" not in body:
        raise BodyError(422, envelope_errors(body))
    return body["data"]
