"""Scratch databases, shell commands as a reader would run them, and the service under rehearsal."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

from devtools.health import wait_healthy
from devtools.rehearsal.common import REPO_ROOT, STATUS_MARK, VENV_BIN, RehearsalError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def recreate_database(server_url: str, name: str) -> str:
    admin = psycopg2.connect(libpq(make_url(server_url).set(database="postgres").render_as_string(False)))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    return libpq(make_url(server_url).set(database=name).render_as_string(hide_password=False))


def drop_database(server_url: str, name: str) -> None:
    admin = psycopg2.connect(libpq(make_url(server_url).set(database="postgres").render_as_string(False)))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@dataclass
class ShellResult:
    rc: int
    stdout: str
    stderr: str
    http_status: int | None = None
    body: Any = None


def run_shell(command: str, env: dict[str, str], timeout: float = 180) -> ShellResult:
    """Run one command through bash, as a reader pasting it would."""
    try:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        return ShellResult(124, exc.stdout or "", f"timed out after {timeout}s")
    result = ShellResult(done.returncode, done.stdout, done.stderr)
    if STATUS_MARK in done.stdout:
        head, _, tail = done.stdout.rpartition(STATUS_MARK)
        try:
            result.http_status = int(tail.strip().split()[0])
        except (ValueError, IndexError):
            result.http_status = None
        text = head.rstrip("\n")
        if text.startswith("HTTP/"):  # the command asked for headers (-i): body follows a blank line
            text = re.split(r"\r?\n\r?\n", text, maxsplit=1)[-1]
        try:
            result.body = json.loads(text) if text.strip() else None
        except ValueError:
            result.body = text
    return result


def curl_parts(command: str) -> tuple[list[str], int | None, dict | None]:
    """(tokens, index of the JSON body token, parsed body) of a curl command."""
    tokens = shlex.split(command.replace("\\\n", " "), comments=True)
    for i, token in enumerate(tokens[:-1]):
        if token in ("-d", "--data", "--data-raw", "--data-binary", "--json"):
            try:
                return tokens, i + 1, json.loads(tokens[i + 1])
            except ValueError:
                return tokens, i + 1, None
    return tokens, None, None


_DATA_ARG = re.compile(r"""(?P<flag>-d|--data|--data-raw|--data-binary|--json)\s+(?P<arg>'[^']*'|"(?:[^"\\]|\\.)*")""")


def with_body(command: str, changes: dict[str, Any]) -> str:
    """The same curl command with fields of its JSON body changed (None removes a field).

    Only the body argument is rewritten, in place: the rest of the text (variables such as "$URL",
    line continuations) stays exactly as the runbook prints it.
    """
    _, _, body = curl_parts(command)
    match = _DATA_ARG.search(command)
    if match is None or body is None:
        raise RehearsalError("curl command has no JSON body to adapt")
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return command[: match.start("arg")] + shlex.quote(json.dumps(body)) + command[match.end("arg") :]


class Service:
    """gunicorn serving wsgi:app on a free port, logs to a file; stopped by its own pid."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 45) -> None:
        log = open(self.log_path, "w")  # noqa: SIM115 (owned by the child process)
        self.process = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "300",
                "--graceful-timeout",
                "5",
                "wsgi:app",
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        state = wait_healthy(self.url, self.process, timeout, interval=0.3)
        if state == "exited":
            raise RehearsalError(f"the service exited at start-up:\n{self.log_tail()}")
        if state == "ready":
            return
        raise RehearsalError(f"the service did not answer /healthz within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Our own gunicorn master (its own session): SIGTERM lets it stop its workers.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out
