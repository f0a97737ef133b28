"""Reading a markdown runbook into the commands it asks the reader to run, and filling in its
placeholders (`<incident-start-utc>`, `<batch_id from the response>`, ...)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from devtools.rehearsal.common import REPO_ROOT, RUNBOOKS_DIR, SERVICE_URLS, RehearsalError


@dataclass
class Command:
    source: str  # "runbooks/retry-batch.md:42"
    kind: str  # "sql" | "shell"
    text: str
    ran_in: list[str] = field(default_factory=list)

    @property
    def one_line(self) -> str:
        return " ".join(self.text.split())


_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([A-Za-z0-9_+-]*)")
_SHELL_LANGS = {"bash", "sh", "shell", "zsh", "console"}
_SQL_LANGS = {"sql", "postgresql", "psql", "pgsql"}
_PROGRAMS = ("curl", "flask", "make", "psql", ".venv/bin/", "python", "gunicorn", "export")


_INLINE = re.compile(r"`([^`]+)`")
_INLINE_SQL = re.compile(r"(?is)^\s*(select|with)\b.*;\s*$")
_INLINE_SHELL = re.compile(r"^\s*(curl\s|flask\s+--app\s+wsgi\s|python3?\s+-m\s+devtools\.onramp\s)")


def parse_runbook(path: Path) -> list[Command]:
    """Every command of a markdown runbook, in document order: the commands of fenced ```sql and
    ```sh/bash blocks, and inline `code` that is a whole SQL statement (ending in `;`), a curl
    call, a `flask --app wsgi` verb or a command-line client call (`python -m devtools.onramp`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    found: list[tuple[int, Command]] = []
    prose: list[tuple[int, str]] = []  # (line number, text) outside fences
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, lang = opening.group(1), opening.group(2).lower()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = lines[start:j]
        i = j + 1
        if lang in _SQL_LANGS:
            for offset, statement in _split_sql(body):
                found.append((start + offset + 1, Command(f"{rel}:{start + offset + 1}", "sql", statement)))
        elif lang in _SHELL_LANGS or (lang == "" and body and body[0].strip().startswith(_PROGRAMS)):
            for offset, command in _split_shell(body, console=lang == "console"):
                found.append((start + offset + 1, Command(f"{rel}:{start + offset + 1}", "shell", command)))
    # Inline code may wrap across lines of a paragraph.
    text = "\n".join(line for _, line in prose)
    starts = [n for n, _ in prose]
    for match in _INLINE.finditer(text):
        code = " ".join(match.group(1).split())
        kind = "sql" if _INLINE_SQL.match(code) else "shell" if _INLINE_SHELL.match(code) else None
        if kind:
            line_no = starts[text.count("\n", 0, match.start())]
            found.append((line_no, Command(f"{rel}:{line_no}", kind, code)))
    return [command for _, command in sorted(found, key=lambda item: item[0])]


def _split_sql(body: list[str]) -> list[tuple[int, str]]:
    statements, buf, first = [], [], None
    for n, line in enumerate(body):
        if not buf and (not line.strip() or line.strip().startswith("--")):
            continue
        if first is None:
            first = n
        buf.append(line)
        if line.rstrip().endswith(";"):
            statements.append((first, "\n".join(buf).strip()))
            buf, first = [], None
    if buf:
        statements.append((first, "\n".join(buf).strip()))
    return statements


def _split_shell(body: list[str], console: bool = False) -> list[tuple[int, str]]:
    """Commands of a shell block: continuation lines and multi-line quoted arguments kept together."""
    commands, buf, first = [], [], None
    for n, line in enumerate(body):
        if not buf:
            stripped = line.strip()
            if console:
                if not stripped.startswith("$ "):
                    continue  # output shown in a console block
                stripped = stripped[2:]
            elif stripped.startswith("$ "):
                stripped = stripped[2:]
            if not stripped or stripped.startswith("#"):
                continue
            buf, first = [stripped], n
        else:
            buf.append(line)
        joined = "\n".join(buf)
        if joined.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(joined.replace("\\\n", " "), comments=True)
        except ValueError:
            continue  # an open quote: the argument goes on
        commands.append((first, joined))
        buf, first = [], None
    if buf:
        commands.append((first, "\n".join(buf)))
    return commands


def runbook_paths(explicit: list[Path] | None) -> list[Path]:
    if explicit:
        return explicit
    return sorted(RUNBOOKS_DIR.glob("*.md"))


# --------------------------------------------------------------------------- placeholders

_PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_. -]*?)>")
_ALIASES = {
    "since": (
        "incident-start-utc",
        "incident-start",
        "since",
        "start",
        "start-utc",
        "incident-start-time",
        "window-start",
        "since-utc",
        "regression-start-utc",
        "outage-start-utc",
    ),
    "cookie": ("session-cookie", "session", "cookie", "session-cookie-value", "session-value"),
    "api_key": ("key", "api-key", "internal-api-key", "api-key-id", "key-id"),
    "api_secret": ("secret", "api-secret", "internal-api-secret", "api-key-secret", "key-secret"),
    "batch_id": ("batch-id", "batch", "batch-uuid", "batchid"),
    "job_id": ("job-id", "job", "job-uuid", "jobid"),
    "plan_token": ("plan-token", "plan", "token"),
    "execution_uuid": ("execution-uuid", "uuid", "execution-id"),
    "base_url": ("host", "base-url", "service-url", "onramp-url", "url"),
    "admin_email": ("email", "admin-email", "your-email", "oncall-email"),
}


def _normalise(name: str) -> str:
    name = name.strip().lower().replace("_", "-").replace(" ", "-")
    return name[5:] if name.startswith("your-") else name


def fill_named(text: str, values: dict[str, str]) -> str:
    """Fill the placeholders whose exact name is in `values` (e.g. `<file>` of a CLI verb); leave
    the others as they are."""

    def replace(match: re.Match) -> str:
        return values.get(_normalise(match.group(1)), match.group(0))

    return _PLACEHOLDER.sub(replace, text)


class Placeholders:
    def __init__(self, values: dict[str, str], text_changes: dict[str, str] | None = None):
        self.values = values
        self.text_changes = text_changes or {}

    def fill(self, text: str) -> str:
        unknown: list[str] = []

        def replace(match: re.Match) -> str:
            wanted = _normalise(match.group(1))
            for key, names in _ALIASES.items():
                # "<batch_id from the response>" is a batch id too.
                if any(wanted == n or wanted.startswith(n + "-") for n in names) and self.values.get(key):
                    return self.values[key]
            unknown.append(match.group(0))
            return match.group(0)

        filled = _PLACEHOLDER.sub(replace, text)
        if unknown:
            raise RehearsalError(f"unknown placeholder(s) {', '.join(unknown)}: the rehearsal cannot fill them")
        for url in SERVICE_URLS:
            filled = filled.replace(url, self.values["base_url"])
        for old, new in self.text_changes.items():
            filled = filled.replace(old, new)
        return filled
