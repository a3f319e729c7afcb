"""schemathesis hooks of the contract test (tests/ingest/test_openapi_contract.py): each request's
Idempotency-Key made its own.

A key belongs to one request: sent again with another one, the ingest answers 422, as the contract
says, and whether a key was used before is state a schema cannot state. Hypothesis draws the same
few valid keys again and again, so a valid key drawn is replaced by a fresh one; a key that breaks
the schema is left as drawn, for the checks that expect it refused. The replay itself is tested in
tests/ingest/test_idempotency.py."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from streamfn.ingest.routes.predict import IDEMPOTENCY_KEY

_VALID = re.compile(IDEMPOTENCY_KEY)


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """A fresh key in place of each valid one drawn."""
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and _VALID.fullmatch(value):
            case.headers[name] = uuid.uuid4().hex
