"""Drains whose job creation got no answer, kept on disk so a re-run re-sends the same request.

A drain sends `POST /retry-jobs` with an `Idempotency-Key`. The service returns the existing job
for the same key, actor and body, but keeps keys forever, so the key cannot be derived from the
command alone (the same command next week must start a new job). Instead the client records the
key and the exact body before it sends them, and forgets them once the service has answered. If no
answer came (a network error, Ctrl-C, a 5xx), the record stays: the next run of the same command
(same service address, same flags) re-sends that body with that key, and gets the job the first
attempt may have started instead of a second one.

The file holds no credentials: the service address, a digest of the flags, the key, the body
(a plan token and the drain's settings) and the time. Records older than a plan's lifetime are
dropped, since their plan has expired anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_STATE_DIR = "ONRAMP_STATE_DIR"
FILE_NAME = "pending-drains.json"
MAX_AGE_SECONDS = 24 * 3600  # a plan's lifetime (SPEC section 6)


def state_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(ENV_STATE_DIR):
        return Path(environ[ENV_STATE_DIR])
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "onramp"


def fingerprint(url: str, command: Mapping[str, Any]) -> str:
    """One command against one service: the address and every flag that shapes the request."""
    canonical = json.dumps({"url": url, "command": command}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Pending:
    key: str
    body: dict
    sent_at: float


class PendingDrains:
    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / FILE_NAME

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        now = time.time()
        return {
            fp: record
            for fp, record in data.items()
            if isinstance(record, dict) and now - float(record.get("sent_at", 0)) < MAX_AGE_SECONDS
        }

    def _write(self, data: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole and renamed, so a crash never leaves half a file behind.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pending-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def find(self, fp: str) -> Pending | None:
        record = self._read().get(fp)
        if record is None:
            return None
        return Pending(key=record["key"], body=record["body"], sent_at=float(record["sent_at"]))

    def remember(self, fp: str, key: str, body: dict) -> None:
        data = self._read()
        data[fp] = {"key": key, "body": body, "sent_at": time.time()}
        self._write(data)

    def forget(self, fp: str) -> None:
        data = self._read()
        if data.pop(fp, None) is not None or self.path.exists():
            self._write(data)
