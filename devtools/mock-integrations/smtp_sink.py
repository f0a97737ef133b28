#!/usr/bin/env python3
"""A tiny SMTP sink: accepts every message and keeps it (stdlib socketserver only).

Each message is kept in memory and, with --dir, written as one JSON file
(`<n>-<utc time>.json`: mail_from, rcpt_to, subject, received_at, data). Nothing is relayed.
It speaks enough SMTP for smtplib: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, and accepts
AUTH (any credentials; they are not recorded). No STARTTLS: point the service at it with
`SMTP_URL=smtp://127.0.0.1:<port>`.

Run: python devtools/mock-integrations/smtp_sink.py --port 2525 --dir instance/smtp-sink
Use as a library: `SmtpSink(directory=...).start()` (a thread; `.port`, `.messages`, `.stop()`).
"""

from __future__ import annotations

import argparse
import json
import socketserver
import sys
import threading
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

_MAX_MESSAGE = 5 * 1024 * 1024


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, directory: str | Path | None = None):
        self.host = host
        self.port = port
        self.directory = Path(directory) if directory else None
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def store(self, mail_from: str, rcpt_to: list[str], data: bytes) -> dict[str, Any]:
        headers = BytesHeaderParser().parsebytes(data)
        message = {
            "mail_from": mail_from,
            "rcpt_to": rcpt_to,
            "subject": headers.get("Subject"),
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "data": data.decode("utf-8", "replace"),
        }
        with self._lock:
            self.messages.append(message)
            number = len(self.messages)
        if self.directory:
            stamp = message["received_at"].replace(":", "").replace("+0000", "Z")
            path = self.directory / f"{number:05d}-{stamp}.json"
            path.write_text(json.dumps(message, indent=2))
        return message

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def bind(self) -> socketserver.ThreadingTCPServer:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        return self._server

    def start(self) -> SmtpSink:
        server = self.bind()
        self._thread = threading.Thread(target=server.serve_forever, name="smtp-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _address(arg: str) -> str:
    # "FROM:<a@b.c> SIZE=123" -> "a@b.c"
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1 : rest.find(">")] if ">" in rest else rest[1:]
    return rest.split(" ", 1)[0]


def _handler_for(sink: SmtpSink):
    class Handler(socketserver.StreamRequestHandler):
        timeout = 30

        def reply(self, line: str) -> None:
            self.wfile.write((line + "\r\n").encode())
            self.wfile.flush()

        def handle(self) -> None:
            mail_from: str | None = None
            rcpt_to: list[str] = []
            self.reply("220 smtp-sink ready")
            while True:
                try:
                    raw = self.rfile.readline(4096)
                except OSError:
                    return
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.wfile.write(b"250-smtp-sink\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 5242880\r\n")
                    self.wfile.flush()
                elif verb == "HELO":
                    self.reply("250 smtp-sink")
                elif verb == "AUTH":
                    mech = arg.split(" ", 1)[0].upper()
                    if mech == "LOGIN":
                        self.reply("334 VXNlcm5hbWU6")  # "Username:"; answers are read, not kept
                        self.rfile.readline(4096)
                        self.reply("334 UGFzc3dvcmQ6")
                        self.rfile.readline(4096)
                    elif mech == "PLAIN" and " " not in arg:
                        self.reply("334 ")
                        self.rfile.readline(4096)
                    self.reply("235 2.7.0 accepted")
                elif verb == "MAIL":
                    mail_from, rcpt_to = _address(arg), []
                    self.reply("250 OK")
                elif verb == "RCPT":
                    if mail_from is None:
                        self.reply("503 need MAIL first")
                    else:
                        rcpt_to.append(_address(arg))
                        self.reply("250 OK")
                elif verb == "DATA":
                    if not rcpt_to:
                        self.reply("503 need RCPT first")
                        continue
                    self.reply("354 end data with <CR><LF>.<CR><LF>")
                    chunks: list[bytes] = []
                    size = 0
                    while True:
                        part = self.rfile.readline(65536)
                        if not part or part in (b".\r\n", b".\n"):
                            break
                        if part.startswith(b".."):
                            part = part[1:]  # undo dot-stuffing
                        size += len(part)
                        if size <= _MAX_MESSAGE:
                            chunks.append(part)
                    sink.store(mail_from or "", rcpt_to, b"".join(chunks))
                    mail_from, rcpt_to = None, []
                    self.reply("250 OK: queued")
                elif verb == "RSET":
                    mail_from, rcpt_to = None, []
                    self.reply("250 OK")
                elif verb == "NOOP":
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                elif verb == "STARTTLS":
                    self.reply("454 TLS not available")
                else:
                    self.reply("502 command not implemented")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SMTP sink: keeps every message, relays nothing.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525, help="0 picks a free port (default 2525)")
    parser.add_argument("--dir", default=None, help="write each message as JSON into this folder")
    args = parser.parse_args(argv)
    sink = SmtpSink(host=args.host, port=args.port, directory=args.dir)
    server = sink.bind()
    where = f", saving to {sink.directory}" if sink.directory else ""
    print(f"SMTP sink listening on {sink.url}{where}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
