"""A stand-in for a vendor's CRM, for local runs, incident rehearsals and the tests (stdlib only).

What the service talks to:
  POST /webhooks[/...]   PROJECT_CREATED webhooks; each is recorded with whether its
                         X-Onramp-Signature (HMAC-SHA256 of the raw body) checks out.
  GET  /objects/<key>    the record the `fetch_crm_record` step reads (any key exists).

What you (or a script) drive it with:
  POST /_control {"mode": "ok" | "503" | "429" | "timeout", "delay": 30}
                         switch how the two endpoints above answer; `timeout` holds the request
                         for `delay` seconds (or until the mode changes) before answering 504.
  GET  /_control         the current mode.
  GET  /_received        {"webhooks": [...], "fetches": [...], "counts": {...}}
  POST /_reset           forget everything received (mode is kept).

Run: python -m devtools.mocks.crm --port 9300 --secret s3cr3t

As a library (threads): `MockCrm(secrets=["s3cr3t"]).start()`, then `.url`, `.set_mode()`,
`.snapshot()`, `.stop()`. Tests also script answers and read raw requests:
  crm.respond(503)                                   # every later request gets 503 ...
  crm.respond(200, {"id": "x"}, path="/objects/k")   # ... except this path
  crm.respond(200, delay=3)                          # answer slowly (timeouts)
  crm.requests                                       # [Recorded(method, path, headers, body), ...]
  crm.wait_for(2)                                    # block until 2 requests arrived
A failure mode other than `ok` wins over scripted answers: the CRM is down.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from devtools.mocks.base import BackgroundServer

MODES = ("ok", "503", "429", "timeout")
SIGNATURE_HEADER = "X-Onramp-Signature"
DEFAULT_TIMEOUT_DELAY = 30.0
MAX_BODY = 1024 * 1024


def expected_signature(secret: str, body: bytes) -> str:
    # The same scheme the service uses (and a real CRM integration would check).
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Recorded:
    """One request the service sent (control paths under /_ are not recorded)."""

    method: str
    path: str  # as sent, query string included
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    delay: float = 0.0


def _encode(body: Any, status: int) -> bytes:
    if body is None:
        return b'{"ok": true}' if 200 <= status < 300 else json.dumps({"error": status}).encode()
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class MockCrm(BackgroundServer):
    thread_name = "mock-crm"

    def __init__(
        self,
        secrets: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "ok",
        delay: float = DEFAULT_TIMEOUT_DELAY,
        quiet: bool = True,
    ):
        super().__init__(host, port)
        self.secrets = [s for s in (secrets or []) if s]
        self.quiet = quiet
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._mode = "ok"
        self._delay = delay
        # Set whenever the mode changes or the server stops: releases requests held by `timeout`.
        self._mode_changed = threading.Event()
        self._scripted: Answer | None = None
        self._scripted_by_path: dict[str, Answer] = {}
        self.webhooks: list[dict[str, Any]] = []
        self.fetches: list[dict[str, Any]] = []
        self._requests: list[Recorded] = []
        self.set_mode(mode, delay)

    # ------------------------------------------------------------------ mode and scripted answers
    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def set_mode(self, mode: str, delay: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self._delay = float(delay)
            old, self._mode_changed = self._mode_changed, threading.Event()
        old.set()

    def respond(
        self,
        status: int = 200,
        body: Any = None,
        *,
        delay: float = 0.0,
        path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> MockCrm:
        """Answer later requests (to `path` only, or to every path, forgetting per-path answers)
        with `status` and `body` (JSON-encoded unless bytes or str), after `delay` seconds."""
        answer = Answer(status, _encode(body, status), dict(headers or {}), delay)
        with self._lock:
            if path is None:
                self._scripted = answer
                self._scripted_by_path.clear()
            else:
                self._scripted_by_path[path] = answer
        return self

    def failure(self) -> Answer | None:
        """The answer of the current failure mode, or None when the CRM is up."""
        with self._lock:
            mode, delay, changed = self._mode, self._delay, self._mode_changed
        if mode == "503":
            return Answer(503, b'{"error": "service unavailable (mock outage)"}', {"Retry-After": "30"})
        if mode == "429":
            return Answer(429, b'{"error": "rate limit exceeded (mock)"}', {"Retry-After": "30"})
        if mode == "timeout":
            # Hold the connection past the caller's timeout; give up early if the mode changes.
            changed.wait(delay)
            return Answer(504, b'{"error": "mock timeout"}', {})
        return None

    def scripted(self, path: str) -> Answer | None:
        with self._lock:
            return self._scripted_by_path.get(path, self._scripted)

    def hold(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # ------------------------------------------------------------------ what was received
    def record(self, request: Recorded, *, webhook: dict | None = None, fetch: dict | None = None) -> None:
        with self._arrived:
            self._requests.append(request)
            if webhook is not None:
                self.webhooks.append(webhook)
            if fetch is not None:
                self.fetches.append(fetch)
            self._arrived.notify_all()

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self._requests)}")
                self._arrived.wait(left)
            return list(self._requests)

    def reset(self) -> None:
        """Forget everything received (the mode and scripted answers stay)."""
        with self._lock:
            self.webhooks.clear()
            self.fetches.clear()
            self._requests.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            webhooks = list(self.webhooks)
            fetches = list(self.fetches)
            mode = self._mode
        return {
            "mode": mode,
            "webhooks": webhooks,
            "fetches": fetches,
            "counts": {
                "webhooks": len(webhooks),
                "webhooks_signature_valid": sum(1 for w in webhooks if w["signature_valid"]),
                "fetches": len(fetches),
            },
        }

    def signature_valid(self, body: bytes, header: str | None) -> bool:
        if not header:
            return False
        return any(hmac.compare_digest(expected_signature(s, body), header.strip()) for s in self.secrets)

    # ------------------------------------------------------------------ server
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        return ThreadingHTTPServer(address, _handler_for(self))

    def before_stop(self) -> None:
        self._stopping.set()
        self._mode_changed.set()


def _handler_for(crm: MockCrm):
    class Handler(BaseHTTPRequestHandler):
        server_version = "MockCRM/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if not crm.quiet:
                sys.stderr.write(f"mock-crm {self.address_string()} {fmt % args}\n")

        def _send(self, status: int, body: Any, headers: dict | None = None) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller gave up (a timeout): nothing to answer

        def _answer(self, path: str, default: tuple[int, Any]) -> None:
            """Failure mode first, then a scripted answer, else the CRM's own `default`."""
            answer = crm.failure() or crm.scripted(path)
            if answer is None:
                return self._send(*default)
            if answer.delay:
                crm.hold(answer.delay)
            return self._send(answer.status, answer.body, answer.headers)

        def _control(self, path: str, body: bytes) -> bool:
            """Handle the /_ paths (never recorded as traffic); False for any other path."""
            if self.command == "GET" and path == "/_control":
                self._send(200, {"mode": crm.mode})
            elif self.command == "POST" and path == "/_control":
                try:
                    wanted = json.loads(body or b"{}")
                    crm.set_mode(str(wanted.get("mode", "")), wanted.get("delay"))
                except (ValueError, AttributeError, TypeError) as exc:
                    self._send(400, {"error": str(exc), "modes": list(MODES)})
                else:
                    self._send(200, {"mode": crm.mode})
            elif self.command == "GET" and path == "/_received":
                self._send(200, crm.snapshot())
            elif (self.command, path) in (("POST", "/_reset"), ("DELETE", "/_received")):
                crm.reset()
                self._send(200, {"reset": True})
            elif path in ("/_health", "/healthz"):
                self._send(200, {"status": "ok"})
            else:
                return False
            return True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
            path = urlsplit(self.path).path
            if (path.startswith("/_") or path == "/healthz") and self._control(path, body):
                return
            request = Recorded(self.command, self.path, dict(self.headers.items()), body)
            if self.command == "GET" and path.startswith("/objects/"):
                key = unquote(path[len("/objects/") :])
                crm.record(request, fetch={"key": key, "mode": crm.mode, "received_at": now_iso()})
                record = {"id": key, "object_type": "deal", "properties": {"stage": "closed_won"}}
                return self._answer(path, (200, record))
            if self.command == "POST" and (path == "/webhooks" or path.startswith("/webhooks/")):
                header = self.headers.get(SIGNATURE_HEADER)
                try:
                    parsed: Any = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                valid = crm.signature_valid(body, header)
                webhook = {
                    "path": path,
                    "received_at": now_iso(),
                    "signature": header,
                    "signature_valid": valid,
                    "mode": crm.mode,
                    "event": parsed.get("event") if isinstance(parsed, dict) else None,
                    "body": parsed if parsed is not None else body.decode("utf-8", "replace"),
                }
                crm.record(request, webhook=webhook)
                return self._answer(path, (200, {"received": True, "signature_valid": valid}))
            crm.record(request)
            return self._answer(path, (404, {"error": f"no such path {path}"}))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mocks.crm", description="Mock CRM: records signed webhooks, serves /objects/<key>."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9300, help="0 picks a free port (default 9300)")
    parser.add_argument(
        "--secret", action="append", default=[], help="signing secret(s) webhooks are checked against (repeatable)"
    )
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument(
        "--delay", type=float, default=DEFAULT_TIMEOUT_DELAY, help="seconds a request is held in timeout mode"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    crm = MockCrm(
        secrets=args.secret, host=args.host, port=args.port, mode=args.mode, delay=args.delay, quiet=not args.verbose
    )
    crm.serve_in_foreground(f"mock CRM listening on {{url}} (mode {crm.mode}, {len(crm.secrets)} signing secret(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
