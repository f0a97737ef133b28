"""Shell commands as a reader would run them, and the curl commands' JSON bodies."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
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
