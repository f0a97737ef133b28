"""A local HTTP server for tests: plays a CRM API and a webhook receiver on 127.0.0.1.

    receiver = Receiver().start()
    receiver.url                          # "http://127.0.0.1:<port>"
    receiver.respond(503)                 # every later request gets 503 ...
    receiver.respond(200, {"id": "x"}, path="/objects/deal-1")   # ... except this path
    receiver.respond(200, delay=3)        # answer slowly (timeouts)
    receiver.requests                     # [Recorded(method, path, headers, body), ...]
    receiver.wait_for(2)                  # block until 2 requests arrived
    receiver.stop()

By default every request is answered 200 with `{"ok": true}`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
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
class _Response:
    status: int
    body: bytes
    delay: float
    headers: dict[str, str]


class Receiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._default = _Response(200, b'{"ok": true}', 0.0, {})
        self._by_path: dict[str, _Response] = {}
        self._requests: list[Recorded] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ---------------------------------------------------------------------------
    def respond(
        self,
        status: int = 200,
        body: Any = None,
        *,
        delay: float = 0.0,
        path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Receiver:
        """Answer later requests (for `path` only, or for all paths) with `status` and `body`."""
        if body is None:
            raw = b'{"ok": true}' if 200 <= status < 300 else json.dumps({"error": status}).encode()
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(body).encode()
        response = _Response(status, raw, delay, dict(headers or {}))
        with self._lock:
            if path is None:
                self._default = response
                self._by_path.clear()
            else:
                self._by_path[path] = response
        return self

    def fail_with(self, status: int = 503) -> Receiver:
        return self.respond(status)

    # -- inspection ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self._requests)}")
                self._arrived.wait(left)
            return list(self._requests)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with receiver._arrived:
                    receiver._requests.append(recorded)
                    response = receiver._by_path.get(self.path.split("?")[0], receiver._default)
                    receiver._arrived.notify_all()
                if response.delay:
                    receiver._stopping.wait(response.delay)
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(response.body)))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
