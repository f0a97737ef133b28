"""Shell commands as a reader would run them (in the foreground, or in the background at a
terminal), the curl commands' JSON bodies and the command-line client's flags."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from devtools.rehearsal.common import REPO_ROOT, STATUS_MARK, RehearsalError


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


# --------------------------------------------------------------------------- client commands

_FLAG_VALUE = r"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)"""


def with_flags(command: str, changes: dict[str, Any]) -> str:
    """The same command-line client call with some flags changed, in place (the rest stays as
    printed): a string sets `--flag VALUE` (replaced, or added at the end), None removes the flag
    and its value, True adds a switch (`--notify`) if it is missing, False removes it."""
    for flag, value in changes.items():
        name = re.escape(flag)
        if value is None:
            command = re.sub(rf"\s+{name}(?:=|\s+){_FLAG_VALUE}", "", command)
        elif value is False:
            command = re.sub(rf"\s+{name}(?!\S)", "", command)
        elif value is True:
            if not re.search(rf"(?<!\S){name}(?!\S)", command):
                command = f"{command.rstrip()} {flag}"
        else:
            text = shlex.quote(str(value))
            pattern = rf"(?<!\S){name}(?:=|\s+){_FLAG_VALUE}"
            if re.search(pattern, command):
                command = re.sub(pattern, lambda _m, t=f"{flag} {text}": t, command)
            else:
                command = f"{command.rstrip()} {flag} {text}"
    return command


def flag_value(command: str, flag: str) -> str | None:
    """The value a command gives `flag` (`--reason "CRM flapping"` -> CRM flapping), or None."""
    tokens = shlex.split(command.replace("\\\n", " "), comments=True)
    for i, token in enumerate(tokens):
        if token == flag and i + 1 < len(tokens):
            return tokens[i + 1]
        if token.startswith(flag + "="):
            return token[len(flag) + 1 :]
    return None


def has_flag(command: str, flag: str) -> bool:
    return flag in shlex.split(command.replace("\\\n", " "), comments=True)


class Background:
    """A command running through bash while the rehearsal goes on (the client's `drain`, which
    follows its job until it ends). Its stdin can be a pseudo-terminal, so the command sees a
    person at a terminal and asks its question; `answer` is typed into it."""

    def __init__(self, command: str, env: dict[str, str], answer: str | None = None) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        master = slave = None
        if answer is not None:
            master, slave = pty.openpty()
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=REPO_ROOT,
            env=env,
            stdin=slave if slave is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so a timeout can end all of it
        )
        self._master = master
        if slave is not None:
            os.close(slave)
            os.write(master, answer.encode())  # the terminal keeps the line until it is read
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        """The first stdout line matching `pattern`, waiting for it; None if the command ended
        (or `timeout` passed) without one."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.stdout:
                    found = regex.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not any(r.is_alive() for r in self._readers)):
                    return None
                self._changed.wait(min(left, 0.5))

    def finish(self, timeout: float) -> ShellResult:
        """Wait for the command to end (killing it after `timeout`); what it did."""
        try:
            rc = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = 124
            self.stderr.append(f"timed out after {timeout}s")
        for reader in self._readers:
            reader.join(5)
        self.stop()
        return ShellResult(rc, "\n".join(self.stdout), "\n".join(self.stderr))

    def stop(self) -> None:
        """End the command and whatever it started (its own process group), if still running."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._master is not None:
            os.close(self._master)
            self._master = None
