"""Reading what the command-line client prints for people: its plain lines and its ASCII tables
(rich's ASCII2 box, which the client uses when its output is not a terminal)."""

from __future__ import annotations

import re


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every table of the output, in order: a list of rows keyed by column heading."""
    found: list[list[dict[str, str]]] = []
    rows: list[dict[str, str]] | None = None
    header: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("+") and stripped.endswith("+"):  # a border or the heading's rule
            if rows is None:
                rows, header = [], None
            continue
        if stripped.startswith("|") and rows is not None:
            inner = stripped[1:-1]
            if header is None:
                header = [cell.strip() for cell in inner.split("|")]
            else:
                # The last column (a message, a reason) may itself contain "|".
                cells = [cell.strip() for cell in inner.split("|", len(header) - 1)]
                rows.append(dict(zip(header, cells, strict=False)))
            continue
        if rows is not None:
            found.append(rows)
            rows = None
    if rows is not None:
        found.append(rows)
    return found


def table_after(text: str, title: str) -> list[dict[str, str]] | None:
    """The rows of the table printed right after the line `title` (e.g. "Skipped by reason")."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(title):
            following = tables("\n".join(lines[i + 1 :]))
            return following[0] if following else None
    return None


def line_matching(text: str, pattern: str) -> re.Match | None:
    regex = re.compile(pattern)
    for line in text.splitlines():
        found = regex.search(line)
        if found:
            return found
    return None


# `jobs show`: one "label   value" line each (devtools/onramp/render.py job_detail).
_DETAIL = re.compile(r"^(job|state|created|started|finished|plan|scope|notifications|pace|brake|progress|rate)\s+(.*)$")


def details(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _DETAIL.match(line)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2).strip()
    return found


def counts(progress: dict) -> str:
    """How the client writes a job's counts: `298 success, 0 error, 0 skipped`."""
    return f"{progress.get('success')} success, {progress.get('error')} error, {progress.get('skipped')} skipped"
