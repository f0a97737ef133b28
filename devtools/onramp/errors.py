"""The client's exit codes and the errors that lead to them (one place, documented in the README)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    OK = 0
    NOT_COMPLETED = 1  # drain: the job halted, failed or was cancelled, or the drain was declined
    USAGE = 2  # a bad flag or environment; drain without --yes when nobody can answer
    API_ERROR = 3  # the service answered with an error
    UNREACHABLE = 4  # no answer from the service (refused, timed out, connection lost)
    CLIENT_BUG = 5  # an unexpected error inside the client itself
    INTERRUPTED = 130  # Ctrl-C (drain: after the job was paused or left running)


class UsageError(Exception):
    """Bad arguments or environment; the message names the flag or variable, never its value."""


class Unreachable(Exception):
    """The service gave no answer. For a POST, the request may or may not have been acted on."""

    def __init__(self, url: str, reason: str, *, request_id: str | None = None) -> None:
        super().__init__(f"cannot reach the service at {url}: {reason}")
        self.url = url
        self.reason = reason
        self.request_id = request_id

    def line(self) -> str:
        tail = f" [request_id {self.request_id}]" if self.request_id else ""
        return f"error: {self}{tail}"


class ApiError(Exception):
    """A non-2xx answer, read from the service's one JSON error shape
    `{"error": {"code", "message", "details"}, "request_id"}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        request_id: str | None = None,
        retry_after: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def line(self) -> str:
        """The error as one line: status, code, message, details, request id."""
        text = f"error: {self.status} {self.code}: {self.message}"
        details = flatten_details(self.details)
        if details:
            text += f" ({details})"
        if self.retry_after:
            text += f"; retry after {self.retry_after} s"
        if self.request_id:
            text += f" [request_id {self.request_id}]"
        return text


def flatten_details(details: Any, prefix: str = "") -> str:
    """`{"until": ["Must be later than since."], "a": {"b": ["x"]}}` -> `until: Must be ...; a.b: x`."""
    if details is None or details == {} or details == []:
        return ""
    if isinstance(details, dict):
        parts = []
        for key, value in details.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                parts.append(flatten_details(value, name))
            else:
                parts.append(f"{name}: {flatten_details(value)}")
        return "; ".join(p for p in parts if p)
    if isinstance(details, list):
        return " ".join(flatten_details(item) if isinstance(item, dict | list) else str(item) for item in details)
    return f"{prefix}: {details}" if prefix else str(details)
