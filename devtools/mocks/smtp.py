"""A tiny SMTP sink: accepts every message and keeps it (stdlib socketserver only).

Each message is kept in memory and, with --dir, written as one JSON file
(`<n>-<utc time>.json`: mail_from, rcpt_to, subject, received_at, data). Nothing is relayed.
It speaks enough SMTP for smtplib: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, and accepts
AUTH (any credentials; they are not recorded). No STARTTLS: point the service at it with
`SMTP_URL=smtp://127.0.0.1:<port>`.

Run: python -m devtools.mocks.smtp --port 2525 --dir instance/smtp-sink
As a library (a thread): `with SmtpSink(directory=...) as sink:`, then `.url`, `.messages`
(`Mail` records; `.message` parses one into an EmailMessage), `.count()`, `.clear()`.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from devtools.mocks.base import BackgroundServer

MAX_MESSAGE = 5 * 1024 * 1024


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    def as_json(self) -> dict[str, Any]:
        return {
            "mail_from": self.mail_from,
            "rcpt_to": self.rcpt_to,
            "subject": self.message["Subject"],
            "received_at": self.received_at,
            "data": self.data.decode("utf-8", "replace"),
        }


class SmtpSink(BackgroundServer):
    thread_name = "smtp-sink"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, directory: str | Path | None = None):
        super().__init__(host, port)
        self.directory = Path(directory) if directory else None
        self._messages: list[Mail] = []
        self._lock = threading.Lock()
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Mail]:
        with self._lock:
            return list(self._messages)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def clear(self) -> None:
        """Forget the messages kept in memory (files written to --dir stay)."""
        with self._lock:
            self._messages.clear()

    def store(self, mail: Mail) -> None:
        with self._lock:
            self._messages.append(mail)
            number = len(self._messages)
        if self.directory:
            stamp = mail.received_at.replace(":", "").replace("+0000", "Z")
            (self.directory / f"{number:05d}-{stamp}.json").write_text(json.dumps(mail.as_json(), indent=2))

    def make_server(self, address: tuple[str, int]) -> socketserver.ThreadingTCPServer:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        return socketserver.ThreadingTCPServer(address, _handler_for(self))


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

        def read_data(self) -> bytes:
            chunks: list[bytes] = []
            size = 0
            while True:
                part = self.rfile.readline(65536)
                if not part or part in (b".\r\n", b".\n"):
                    return b"".join(chunks)
                if part.startswith(b".."):
                    part = part[1:]  # undo dot-stuffing
                size += len(part)
                if size <= MAX_MESSAGE:
                    chunks.append(part)

        def auth(self, arg: str) -> None:
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
                verb, _, arg = raw.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.wfile.write(b"250-smtp-sink\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 5242880\r\n")
                    self.wfile.flush()
                elif verb == "HELO":
                    self.reply("250 smtp-sink")
                elif verb == "AUTH":
                    self.auth(arg)
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
                    sink.store(Mail(mail_from or "", rcpt_to, self.read_data()))
                    mail_from, rcpt_to = None, []
                    self.reply("250 OK: queued")
                elif verb in ("RSET", "NOOP"):
                    if verb == "RSET":
                        mail_from, rcpt_to = None, []
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
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mocks.smtp", description="SMTP sink: keeps every message, relays nothing."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525, help="0 picks a free port (default 2525)")
    parser.add_argument("--dir", default=None, help="write each message as JSON into this folder")
    args = parser.parse_args(argv)
    sink = SmtpSink(host=args.host, port=args.port, directory=args.dir)
    where = f", saving to {sink.directory}" if sink.directory else ""
    sink.serve_in_foreground(f"SMTP sink listening on {{url}}{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
