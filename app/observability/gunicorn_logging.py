"""gunicorn's own log lines in the app's JSON shape, never with a query string.

Selected by `logger_class` in gunicorn.conf.py. The access line of a request is the app's own
(`app.request`: method, path, status, duration, request id), so gunicorn.conf.py leaves gunicorn's
access log off; gunicorn's default access line would also print the raw URI, query string and
whatever credentials a caller pasted into it. Should someone turn that log back on
(`--access-logfile -`), this class writes it as JSON with the path only. gunicorn's other lines
(start-up, workers, errors) become JSON, and a URI they quote loses its query string.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

from app.observability.logs import REQUEST_ID_HEADER, JsonFormatter

_QUERY = re.compile(r"(?<=\S)\?[^\s\"']+")
_FILTERED_QUERY = "?[Filtered]"


def strip_query_strings(text: str) -> str:
    """`/path?key=value` becomes `/path?[Filtered]` anywhere in `text`."""
    return _QUERY.sub(_FILTERED_QUERY, text)


class _NoQueryStrings(logging.Filter):
    """gunicorn quotes request URIs in some error lines ("Error handling request /x?..")."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = strip_query_strings(message), ()
        return True


def _status_code(status: Any) -> Any:
    # "401 UNAUTHORIZED" from the app, or an int; as gunicorn's own `atoms()` reads it.
    code = str(status).split(None, 1)[0] if status is not None else ""
    return int(code) if code.isdigit() else status


class JsonLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):  # the handlers gunicorn itself installed
                    handler.setFormatter(formatter)
        if not any(isinstance(f, _NoQueryStrings) for f in self.error_log.filters):
            self.error_log.addFilter(_NoQueryStrings())  # setup runs again on every reload

    def access(self, resp: Any, req: Any, environ: dict, request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status = _status_code(resp.status)
        request_id = next((v for k, v in resp.headers if k.lower() == REQUEST_ID_HEADER.lower()), None)
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO")  # never RAW_URI or QUERY_STRING
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "bytes": getattr(resp, "sent", None),
            },
        )
