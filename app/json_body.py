"""Parse a request body as JSON, turning every way it can be malformed into a 400.

`json.loads` raises RecursionError (not ValueError) on deeply nested input such as 50,000 `[`,
which Flask's `get_json(silent=True)` lets through as a 500. PostgreSQL text and jsonb cannot
hold U+0000, so a string containing it would fail at INSERT time (a 500): refuse it up front.
"""

from __future__ import annotations

import json
from typing import Any

from app.errors import ValidationError

_NOT_JSON = "The request body is not valid JSON"


def parse_json_body(raw: bytes) -> Any:
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ValidationError(_NOT_JSON, details={"body": ["nested too deeply"]}) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(_NOT_JSON, details={"body": [str(exc)]}) from None
    if _has_nul(document):
        raise ValidationError(_NOT_JSON, details={"body": ["strings must not contain U+0000"]})
    return document


def _has_nul(document: Any) -> bool:
    # Iterative: the document may be nested nearly as deep as the parser allows.
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
