"""The OpenAPI document: FastAPI's, with POST /predict_stream described from the live schemas.

POST /predict_stream reads its request itself (FastAPI's dependency resolution cost a quarter of a
1-record request), so FastAPI cannot describe it: this module does, from the schema each model
serves now. The records of the body are each model's columns, typed and bounded, with the
Employee ID; every answer the route gives is listed with its body and headers. Served at
/openapi.json, rebuilt when a model's schema changes.

/docs is swagger-ui, served from the package (static/vendor, pinned by SHA256SUMS) with a page and
a script of ours (static/docs.html, static/docs.js): no CDN, nothing inline, so that the page's
Content-Security-Policy (streamfn.api.headers) allows this origin only, and the docs work on a
machine without internet.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from streamfn import __version__
from streamfn.api.auth import FEEDBACK_PATH, is_open
from streamfn.api.responses import json_response
from streamfn.ingest.refusals import MAX_STRING_LEN
from streamfn.ingest.routes.predict import IDEMPOTENCY_KEY
from streamfn.ingest.schema_cache import ModelUnavailableError
from streamfn.models.schemas import Column, ModelSchema
from streamfn.models.seed import EMPLOYEE_ID

STATIC = Path(__file__).parent / "static"
TITLE = "streamfn ingest"
DESCRIPTION = "Validates records and appends them to the Redis Stream for batched inference."
EXAMPLE_BODY = {
    "data": [
        {"Designation": 1.5, "Resource Allocation": 1.7, "Sleep Hours": 7},
        {
            "Employee ID": "fffe32003000360033003200",
            "Gender": "Female",
            "Company Type": "Service",
            "WFH Setup Available": "No",
            "Designation": 2,
            "Resource Allocation": 3,
            "Mental Fatigue Score": 3.8,
            "Work Hours per Week": 40,
            "Sleep Hours": 7.2,
            "Work-Life Balance Score": 4,
            "Manager Support Score": 4,
            "Deadline Pressure Score": 2,
            "Team Size": 9,
            "Recognition Frequency": 3,
        },
    ]
}
SPELLINGS = (
    "Keys are matched whatever their case, and spaces, underscores and hyphens are one and the "
    "same: `Sleep Hours`, `sleep_hours` and `SLEEP-HOURS` name the same field (two keys that "
    "name the same field are refused)."
)
ERRORS = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                                 {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                    "input": {},
                },
            },
        }
    },
}  # fmt: skip
DETAIL = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
REPLAYED = {
    "Idempotent-Replayed": {
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
        "description": "this answer is the first request's",
    }
}
RETRY_AFTER = {"Retry-After": {"required": True, "description": "seconds to wait",
                               "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip
ACCEPTED = {
    "type": "object",
    "required": ["message_id", "model", "records", "status_url"],
    "properties": {
        "message_id": {"type": "string", "pattern": r"^\d+-\d+$"},
        "model": {"type": "string"},
        "records": {"type": "integer", "minimum": 1},
        "status_url": {"type": "string"},
    },
}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}},
            **extra}  # fmt: skip


# Redis unreachable, on any route that reads it (its answer: streamfn.ingest.responses).
REDIS_DOWN = {503: _json(DETAIL, "Redis unreachable: retry after Retry-After", headers=RETRY_AFTER)}
NOT_FOUND = {404: _json(DETAIL, "never accepted, or its result expired")}
MESSAGE = {
    "type": "object",
    "required": ["message_id", "status"],
    "properties": {
        "message_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "done", "failed", "dead_letter"]},
        "model": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "model_version": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "predictions": {"anyOf": [{"type": "array"}, {"type": "null"}]},
        "labels": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "object": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "error": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        # OUTPUT_EXPLANATIONS: per record, its strongest inputs towards the prediction.
        "reasons": {
            "type": "array",
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["input", "contribution"],
                    "properties": {"input": {"type": "string"}, "contribution": {"type": "number"}},
                },
            },
        },
    },
}
_FLAG = {"type": "string"}
_NUMBER_OR_NULL = {"anyOf": [{"type": "number"}, {"type": "null"}]}
WINDOW = {
    "type": "object",
    "required": ["model", "version", "window_start", "window_end", "records", "features",
                 "prediction", "labelled", "accuracy", "macro_f1", "flag"],
    "properties": {
        "model": {"type": "string"}, "version": {"type": "string"},
        "window_start": {"type": "integer"}, "window_end": {"type": "integer"},
        "records": {"type": "integer"},
        "features": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["psi", "missing_share", "out_of_range", "flag"],
            "properties": {"psi": {"type": "number"}, "missing_share": {"type": "number"},
                           "reference_missing_share": {"type": "number"},
                           "out_of_range": {"type": "integer"}, "flag": _FLAG}}},
        "prediction": {"type": "object", "required": ["psi", "shares", "flag"], "properties": {
            "psi": _NUMBER_OR_NULL, "shares": {"type": "object"}, "flag": _FLAG}},
        "labelled": {"type": "integer"}, "accuracy": _NUMBER_OR_NULL,
        "macro_f1": _NUMBER_OR_NULL, "flag": _FLAG,
        # Estimated without labels from the version's calibrated probabilities (CBPE).
        "estimated_rows": {"type": "integer"}, "estimated_accuracy": _NUMBER_OR_NULL,
        "estimated_macro_f1": _NUMBER_OR_NULL,
        "estimate_gap": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
            "macro_f1": {"type": "number"}, "flag": _FLAG}}]},
        # The explained rows' attribution against the reference's ranking.
        "attribution": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
            "explained": {"type": "integer"}, "ndcg": _NUMBER_OR_NULL,
            "shares": {"type": "object", "additionalProperties": {"type": "number"}},
            "flag": _FLAG}}]},
    },
}  # fmt: skip
MONITORING_DOC = {200: {"content": {"application/json": {"schema": {
    "type": "object", "required": ["window_s", "windows"],
    "properties": {"window_s": {"type": "number"}, "windows": {"type": "array", "items": WINDOW}},
}}}}, 422: _json(ERRORS, "an unknown model, or a count out of 1-1440")}  # fmt: skip
FEEDBACK_EXAMPLE = {
    "labels": [{"message_id": "1732600000000-0", "record_index": 0, "label": "High"}]
}
FEEDBACK_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["labels"], "additionalProperties": False,
    "properties": {"labels": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["message_id", "record_index"],
        "properties": {
            "message_id": {"type": "string"},
            "record_index": {"type": "integer", "minimum": 0},
            "label": {"anyOf": [{"type": "string"}, {"type": "integer"}],
                      "description": "a label (High) or a class (2)"},
            "burn_rate": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "the seed's models: binned as training binned it"},
        },
        "oneOf": [{"required": ["label"]}, {"required": ["burn_rate"]}],
    }}},
}, "example": FEEDBACK_EXAMPLE}}}  # fmt: skip
FEEDBACK_DOC = {
    202: _json({"type": "object", "required": ["joined", "counted", "repeated", "conflicts"],
                "properties": {"joined": {"type": "integer"}, "counted": {"type": "integer"},
                               "repeated": {"type": "integer"}, "conflicts": {"type": "integer"},
                               "at": {"type": "integer"}}},
        "joined: counted now, repeated (the same label sent again counts once), or conflicts "
        "(another label for a record that has one: the first is kept, the conflict counted)"),
    413: _json(ERRORS, "more than MAX_BODY_BYTES bytes"),
    415: _json(ERRORS, "a Content-Type other than JSON"),
    422: _json(ERRORS, "labels that cannot be joined (unknown or expired id, index out of "
               "range, not a class of the model): each is named, and none is counted"),
    **REDIS_DOWN,
}  # fmt: skip
API_KEY_HEADER = {"name": "X-API-Key", "in": "header", "required": False,
                  "schema": {"type": "string"}}  # fmt: skip
HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
METRICS = {200: {"description": "Prometheus text format",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}}  # fmt: skip


def column_schema(column: Column) -> dict[str, Any]:
    """A column's JSON Schema: its type, its range or categories; null unless required."""
    if column.kind in ("number", "integer"):
        found: dict[str, Any] = {"type": column.kind}
        if column.low > float("-inf"):
            found["minimum"] = column.low
        if column.high < float("inf"):
            found["maximum"] = column.high
    elif column.kind == "boolean":
        found = {"type": "boolean"}
    elif column.categories:
        found = {"type": "string", "enum": list(column.categories),
                 "description": "any case: `male` is `Male`"}  # fmt: skip
    else:
        found = {"type": "string", "maxLength": MAX_STRING_LEN}
    if column.required:
        return found
    return {"anyOf": [found, {"type": "null"}], "description": "null or absent: imputed"}


def record_schema(schema: ModelSchema) -> dict[str, Any]:
    """One record of a model: its columns, at least one given (not null), and the Employee ID."""
    properties = {c.name: column_schema(c) for c in schema.columns}
    properties[EMPLOYEE_ID] = {"anyOf": [{"type": "string", "maxLength": MAX_STRING_LEN},
                                         {"type": "null"}],
                               "description": "passed through to the CSV"}  # fmt: skip
    found: dict[str, Any] = {
        "type": "object",
        "title": f"{schema.model} record (v{schema.version})",
        "description": SPELLINGS,
        "properties": properties,
        "additionalProperties": False,
        # At least one of the model's inputs, not null.
        "anyOf": [{"required": [c.name], "properties": {c.name: {"not": {"type": "null"}}}}
                  for c in schema.columns],
    }  # fmt: skip
    required = [c.name for c in schema.columns if c.required]
    if required:
        found["required"] = required
    return found


def predict_operation(served: list[ModelSchema], models: list[str], max_records: int) -> dict:
    """POST /predict_stream: its parameters, body and every answer."""
    records = [record_schema(s) for s in served]
    distinct = [r for i, r in enumerate(records) if r["properties"] not in
                [o["properties"] for o in records[:i]]]  # fmt: skip
    items = distinct[0] if len(distinct) == 1 else {"anyOf": distinct}
    body = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {"data": {"type": "array", "minItems": 1, "maxItems": max_records,
                                "items": items}},
    }  # fmt: skip
    return {
        "summary": "Validate records and append them to the stream",
        "description": "The records must fit the schema of the model named (GET /models).",
        "operationId": "predict_stream",
        "parameters": [
            {
                "name": "model",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "enum": models},
                "description": "the model that predicts these records",
            },
            {**API_KEY_HEADER, "description": "required when INGEST_API_KEY is set"},
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 128,
                    "pattern": f"^{IDEMPOTENCY_KEY}$",
                },
                "description": "one per request, the same on each retry of it: within "
                "IDEMPOTENCY_TTL_S the same key and request get the first answer again "
                "(Idempotent-Replayed: true) and append nothing; the same key with another "
                "request is 422",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body, "example": EXAMPLE_BODY}},
        },
        "responses": {
            "202": _json(
                ACCEPTED,
                "accepted: the message is in the stream (or, with "
                "Idempotent-Replayed: true, it was, by the first request with this "
                "Idempotency-Key)",
                headers=REPLAYED,
            ),
            "409": _json(
                DETAIL,
                "a request with this Idempotency-Key is being appended now "
                "(Kinesis and SQS): retry after Retry-After",
                headers=RETRY_AFTER,
            ),
            "401": _json(
                DETAIL,
                "INGEST_API_KEY is set and X-API-Key is missing or wrong",
                headers={"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
            ),
            "413": _json(ERRORS, "more than MAX_RECORDS records or MAX_BODY_BYTES bytes"),
            "415": _json(ERRORS, "a Content-Type other than JSON"),
            "422": _json(
                ERRORS,
                "malformed JSON, an unknown model, a record that does not fit its model's "
                "schema (each error names the record and field), or an Idempotency-Key that "
                "is not 1-128 printable characters or came with another request",
            ),
            "503": _json(
                DETAIL,
                "Redis unreachable or full, the stream too far behind (MAX_LAG, "
                "MAX_LAG_BYTES), or the model's schema unreadable or its flavour not in "
                "MODEL_FLAVORS: retry after Retry-After",
                headers=RETRY_AFTER,
            ),
        },
    }


async def document(request: Request) -> dict[str, Any]:
    """The whole OpenAPI document, with POST /predict_stream as the models are served now."""
    app: FastAPI = request.app
    if getattr(app.state, "openapi_base", None) is None:
        app.state.openapi_base = get_openapi(
            title=TITLE, version=__version__, description=DESCRIPTION, routes=app.routes
        )
    settings = app.state.settings
    client, _ = app.state.redis.bind()
    served = []
    for model in settings.models:
        try:
            served.append((await app.state.schemas.validator(model, client)).schema)
        except ModelUnavailableError:
            continue  # its records cannot be described now; it answers 503
    found = copy.deepcopy(app.state.openapi_base)
    models = list(settings.models)
    found["paths"]["/predict_stream"] = {
        "post": predict_operation(served, models, settings.MAX_RECORDS)
    }
    for parameter in found["paths"]["/monitoring"]["get"]["parameters"]:
        if parameter["name"] == "model":  # the configured models, known only at run time
            parameter["schema"] = {"anyOf": [{"type": "string", "enum": models}, {"type": "null"}]}
    for path, operations in found["paths"].items():
        if not is_open(path):
            for operation in operations.values():
                keyed(operation, path == FEEDBACK_PATH)
    return found


def keyed(operation: dict[str, Any], feedback: bool) -> None:
    """An operation that asks for the key (streamfn.api.auth): its header and its 401."""
    which = "FEEDBACK_API_KEY (else INGEST_API_KEY)" if feedback else "INGEST_API_KEY"
    parameters = operation.setdefault("parameters", [])
    if not any(p["name"] == API_KEY_HEADER["name"] for p in parameters):
        parameters.append({**API_KEY_HEADER, "description": f"required when {which} is set"})
    operation["responses"].setdefault("401", _json(
        DETAIL, f"{which} is set and X-API-Key is missing or wrong",
        headers={"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    ))  # fmt: skip


def install(app: FastAPI) -> None:
    """Serve /openapi.json (this module's document) and /docs (Swagger UI) on the app."""

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        return json_response(await document(request))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})

    app.mount("/docs/static", StaticFiles(directory=STATIC), name="docs-static")
