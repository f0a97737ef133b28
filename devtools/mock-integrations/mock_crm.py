#!/usr/bin/env python3
"""A stand-in for a vendor's CRM, for local runs and incident rehearsals (stdlib only).

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

Run: python devtools/mock-integrations/mock_crm.py --port 9300 --secret s3cr3t
Use as a library: `MockCrm(secrets=["s3cr3t"]).start()` (threads; `.url`, `.set_mode()`, `.stop()`).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

MODES = ("ok", "503", "429", "timeout")
SIGNATURE_HEADER = "X-Onramp-Signature"
DEFAULT_TIMEOUT_DELAY = 30.0
_MAX_BODY = 1024 * 1024


def expected_signature(secret: str, body: bytes) -> str:
    # The same scheme the service uses (and a real CRM integration would check).
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class MockCrm:
    def __init__(
        self,
        secrets: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "ok",
        delay: float = DEFAULT_TIMEOUT_DELAY,
        quiet: bool = True,
    ):
        self.secrets = [s for s in (secrets or []) if s]
        self.host = host
        self.port = port
        self.quiet = quiet
        self._lock = threading.Lock()
        self._mode = "ok"
        self._delay = delay
        # Set whenever the mode changes or the server stops: releases requests held by `timeout`.
        self._mode_changed = threading.Event()
        self.webhooks: list[dict[str, Any]] = []
        self.fetches: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_mode(mode, delay)

    # ------------------------------------------------------------------ state
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

    def reset(self) -> None:
        with self._lock:
            self.webhooks.clear()
            self.fetches.clear()

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

    def _verify(self, body: bytes, header: str | None) -> bool:
        if not header:
            return False
        return any(hmac.compare_digest(expected_signature(s, body), header.strip()) for s in self.secrets)

    # ------------------------------------------------------------------ server
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> ThreadingHTTPServer:
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        return self._server

    def start(self) -> MockCrm:
        """Serve from a background thread (library use)."""
        server = self.bind()
        self._thread = threading.Thread(target=server.serve_forever, name="mock-crm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._mode_changed.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> MockCrm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ behaviour
    def failure(self) -> tuple[int, dict, dict] | None:
        """How to answer right now instead of succeeding, or None to succeed."""
        with self._lock:
            mode, delay, changed = self._mode, self._delay, self._mode_changed
        if mode == "503":
            return 503, {"error": "service unavailable (mock outage)"}, {"Retry-After": "30"}
        if mode == "429":
            return 429, {"error": "rate limit exceeded (mock)"}, {"Retry-After": "30"}
        if mode == "timeout":
            # Hold the connection past the caller's timeout; give up early if the mode changes.
            changed.wait(delay)
            return 504, {"error": "mock timeout"}, {}
        return None


def _handler_for(crm: MockCrm):
    class Handler(BaseHTTPRequestHandler):
        server_version = "MockCRM/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if not crm.quiet:
                sys.stderr.write(f"mock-crm {self.address_string()} {fmt % args}\n")

        def _send(self, status: int, body: Any, headers: dict | None = None) -> None:
            raw = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller gave up (timeout mode): nothing to answer

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(min(length, _MAX_BODY)) if length > 0 else b""

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/_control":
                return self._send(200, {"mode": crm.mode})
            if path == "/_received":
                return self._send(200, crm.snapshot())
            if path in ("/_health", "/healthz"):
                return self._send(200, {"status": "ok"})
            if path.startswith("/objects/"):
                key = unquote(path[len("/objects/") :])
                with crm._lock:
                    crm.fetches.append({"key": key, "mode": crm._mode, "received_at": _now()})
                failure = crm.failure()
                if failure:
                    return self._send(*failure)
                return self._send(200, {"id": key, "object_type": "deal", "properties": {"stage": "closed_won"}})
            return self._send(404, {"error": f"no such path {path}"})

        def do_POST(self):
            path = urlsplit(self.path).path
            body = self._body()
            if path == "/_control":
                try:
                    wanted = json.loads(body or b"{}")
                    crm.set_mode(str(wanted.get("mode", "")), wanted.get("delay"))
                except (ValueError, AttributeError, TypeError) as exc:
                    return self._send(400, {"error": str(exc), "modes": list(MODES)})
                return self._send(200, {"mode": crm.mode})
            if path == "/_reset":
                crm.reset()
                return self._send(200, {"reset": True})
            if path == "/webhooks" or path.startswith("/webhooks/"):
                header = self.headers.get(SIGNATURE_HEADER)
                try:
                    parsed: Any = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                entry = {
                    "path": path,
                    "received_at": _now(),
                    "signature": header,
                    "signature_valid": crm._verify(body, header),
                    "mode": crm.mode,
                    "event": parsed.get("event") if isinstance(parsed, dict) else None,
                    "body": parsed if parsed is not None else body.decode("utf-8", "replace"),
                }
                with crm._lock:
                    crm.webhooks.append(entry)
                failure = crm.failure()
                if failure:
                    return self._send(*failure)
                return self._send(200, {"received": True, "signature_valid": entry["signature_valid"]})
            return self._send(404, {"error": f"no such path {path}"})

        def do_DELETE(self):
            if urlsplit(self.path).path == "/_received":
                crm.reset()
                return self._send(200, {"reset": True})
            return self._send(404, {"error": "no such path"})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mock CRM: records signed webhooks, serves /objects/<key>.")
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
    server = crm.bind()
    print(f"mock CRM listening on {crm.url} (mode {crm.mode}, {len(crm.secrets)} signing secret(s))", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        crm._mode_changed.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
