"""JSON merge patch (RFC 7396): how `payload_patches` replace parts of a stored trigger payload."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied; neither argument is modified.

    An object patch merges key by key (a `null` value removes the key); any other patch value
    replaces the target outright, as the RFC says.
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
