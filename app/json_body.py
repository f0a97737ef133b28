"""Parse a request body as JSON, turning every way it can be malformed into a 400.

Every JSON endpoint reads its body through `parse_json_body`, so what it refuses is refused
everywhere, before any schema or database sees it:

- input `json.loads` itself chokes on: bad syntax, bad UTF-8, and nesting so deep that it raises
  RecursionError (not ValueError; Flask's `get_json(silent=True)` lets that through as a 500);
- a key repeated in one object: `json.loads` keeps the last one silently, so
  `{"dry_run": true, "dry_run": false}` would execute;
- values PostgreSQL text and jsonb cannot hold, which would otherwise fail at INSERT time (a 500,
  after the request was half processed): U+0000, lone UTF-16 surrogates (`"\\ud800"` is valid
  JSON syntax but no UTF-8 text), and numbers that are not finite (`NaN`, `Infinity`, which are
  not JSON at all, and `1e400`, which overflows a float).

Errors name where the bad value is, as a JSON path (`data.company.name`, `items[2]`), so the
caller can find it; one answer lists every bad place (up to `MAX_REPORTED`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.errors import ValidationError

_NOT_JSON = "The request body is not valid JSON"
_NOT_ACCEPTED = "The request body holds values this service cannot accept"
ROOT = "body"  # the name used for the document itself
MAX_REPORTED = 20

MSG_DUPLICATE_KEY = "Key repeated in the same object; each key may appear once."
MSG_NUL = "Must not contain U+0000."
MSG_SURROGATE = "Must not contain a lone UTF-16 surrogate (\\ud800-\\udfff without its pair)."
MSG_NOT_FINITE = "Numbers must be finite (NaN, Infinity and out-of-range values such as 1e400 are refused)."

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NonFinite:
    """Stands in for NaN, Infinity or an overflowing number until the walk can name its path."""

    __slots__ = ()


_NON_FINITE = _NonFinite()


def _number(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NON_FINITE


def _constant(_name: str) -> _NonFinite:
    return _NON_FINITE


def parse_json_body(raw: bytes) -> Any:
    """The JSON document in `raw`; raises ValidationError (400) for anything listed above."""
    # Objects with a repeated key, with those keys. Holding the objects keeps their ids unique
    # while the walk below looks them up.
    repeated: list[tuple[dict, list[str]]] = []

    def make_object(pairs: list[tuple[str, Any]]) -> dict:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            keys = [key for key, _ in pairs if key in seen or seen.add(key)]
            repeated.append((result, list(dict.fromkeys(keys))))
        return result

    decoder = json.JSONDecoder(object_pairs_hook=make_object, parse_float=_number, parse_constant=_constant)
    try:
        # Strict decoding: json.loads would turn UTF-8-encoded surrogates into text.
        document = decoder.decode(raw.decode(json.detect_encoding(raw)))
    except RecursionError:
        raise ValidationError(_NOT_JSON, details={ROOT: ["nested too deeply"]}) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(_NOT_JSON, details={ROOT: [str(exc)]}) from None
    problems = _problems(document, {id(obj): keys for obj, keys in repeated})
    if problems:
        raise ValidationError(_NOT_ACCEPTED, details=problems)
    return document


def key_path(parent: str, key: str) -> str:
    """`parent.key`, or `parent["key"]` (JSON-escaped, ASCII) when the key is not a plain name."""
    if not _PLAIN_KEY.match(key):
        return f"{'' if parent == ROOT else parent}[{json.dumps(key)}]"
    return key if parent == ROOT else f"{parent}.{key}"


def _string_problems(value: str) -> list[str]:
    if _BAD_CHARACTER.search(value) is None:
        return []
    problems = [MSG_NUL] if "\x00" in value else []
    if _SURROGATE.search(value):
        problems.append(MSG_SURROGATE)
    return problems


def _problems(document: Any, repeated: dict[int, list[str]]) -> dict[str, list[str]]:
    """Every bad place in the document, by JSON path. Iterative: the document may be nested
    nearly as deep as the parser allows."""
    found: dict[str, list[str]] = {}

    def note(path: str, message: str) -> None:
        if len(found) < MAX_REPORTED or path in found:
            messages = found.setdefault(path, [])
            if message not in messages:
                messages.append(message)

    stack: list[tuple[str, Any]] = [(ROOT, document)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            for problem in _string_problems(item):
                note(path, problem)
        elif item is _NON_FINITE:
            note(path, MSG_NOT_FINITE)
        elif isinstance(item, dict):
            for key in repeated.get(id(item), ()):
                note(key_path(path, key), MSG_DUPLICATE_KEY)
            for key, value in item.items():
                child = key_path(path, key)
                for problem in _string_problems(key):
                    note(child, f"Key: {problem}")
                stack.append((child, value))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", value) for index, value in enumerate(item))
    return dict(sorted(found.items()))
