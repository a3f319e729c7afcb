"""What the OpenAPI document says of POST /predict_stream, which reads its request itself."""

from __future__ import annotations

from typing import Any

from streamfn.constants import API_NAMES

EXAMPLE_BODY = {
    "data": [
        {"Designation": 1.5, "Resource_Allocation": 1.7, "Sleep_Hours": 7},
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
# POST /predict_stream reads its query and header itself (FastAPI's dependency resolution cost a
# quarter of a 1-record request): the OpenAPI document describes them here instead.
PREDICT_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "model",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": list(API_NAMES)},
            "description": "the model that predicts these records",
        },
        {
            "name": "X-API-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "required when the server has INGEST_API_KEY set",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": {"type": "object"}}},
                },
                "example": EXAMPLE_BODY,
            }
        },
    },
}
