"""Checks and the summary table of a rehearsal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Check:
    incident: str
    step: str
    expected: str
    actual: str
    ok: bool


def fmt(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.incident = "-"

    def check(self, step: str, expected: Any, actual: Any, ok: bool | None = None) -> bool:
        if ok is None:
            ok = expected == actual
        item = Check(self.incident, step, fmt(expected), fmt(actual), bool(ok))
        self.checks.append(item)
        mark = "ok  " if ok else "FAIL"
        width = 70 if ok else 400
        print(f"  [{mark}] {step}: expected {fmt(expected, width)}; got {fmt(actual, width)}", flush=True)
        return bool(ok)

    def note(self, text: str) -> None:
        print(f"  ...  {text}", flush=True)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def table(self) -> str:
        headers = ("incident", "step", "expected", "actual", "result")
        rows = [(c.incident, c.step, c.expected, c.actual, "PASS" if c.ok else "FAIL") for c in self.checks]
        widths = [min(max(len(str(r[i])) for r in [headers, *rows]), 64 if i == 1 else 56) for i in range(5)]

        def line(values) -> str:
            return " | ".join(str(v)[: widths[i]].ljust(widths[i]) for i, v in enumerate(values))

        sep = "-+-".join("-" * w for w in widths)
        return "\n".join([line(headers), sep, *(line(r) for r in rows)])
