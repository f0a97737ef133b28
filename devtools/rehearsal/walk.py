"""Walking the runbook in an incident's world: the incident's story asks for each step by kind
(commands.py), the walk runs the runbook's command for it as a reader would, with its
placeholders filled in, and compares the answer with what the incident says.

SQL runs on the scratch database as written; shell commands run through bash as printed (with
the variables earlier commands set, as in one terminal). The step handlers live in steps_batch.py
(retry-batch, summary, dismiss), steps_jobs.py (retry jobs), steps_sql.py (the SQL), and
steps_cli.py and steps_cli_jobs.py (the command-line client).
"""

from __future__ import annotations

from devtools.rehearsal.checks import Checks
from devtools.rehearsal.commands import GENERIC, assignments, classify
from devtools.rehearsal.common import RehearsalError
from devtools.rehearsal.expected import Expected, Progress
from devtools.rehearsal.report import Report, fmt
from devtools.rehearsal.runbook import Command, Placeholders
from devtools.rehearsal.shell import Background, ShellResult, run_shell, with_body
from devtools.rehearsal.steps_batch import BatchSteps
from devtools.rehearsal.steps_cli import ClientSteps
from devtools.rehearsal.steps_cli_jobs import ClientJobSteps
from devtools.rehearsal.steps_jobs import JobSteps
from devtools.rehearsal.steps_sql import SqlSteps
from devtools.rehearsal.world import World


class RunbookWalk(BatchSteps, JobSteps, SqlSteps, ClientSteps, ClientJobSteps):
    def __init__(
        self,
        world: World,
        expected: Expected,
        progress: Progress,
        report: Report,
        checks: Checks,
        runbook: list[Command],
    ):
        self.world = world
        self.incident = world.incident
        self.expected = expected
        self.progress = progress
        self.report = report
        self.checks = checks
        self.runbook = runbook
        # Shell variables the runbook sets for later commands (`API=$ONRAMP_URL/...`), as in one terminal.
        self.prelude: list[str] = []
        self.background: list[Background] = []  # commands left running (a drain), ended at teardown
        variables: dict[str, str] = {}
        for cmd in runbook:
            if cmd.kind == "shell" and classify(cmd, {}) == "variable":
                variables.update(assignments(cmd.text))
        self.kinds = {id(cmd): classify(cmd, variables) for cmd in runbook}

    # ------------------------------------------------------------------ running commands
    def kind_of(self, cmd: Command) -> str:
        return self.kinds[id(cmd)]

    def fill(self, text: str) -> str:
        return Placeholders(self.world.values, self.incident.text_changes).fill(text)

    def shell(self, text: str, timeout: float = 180) -> ShellResult:
        return run_shell("\n".join([*self.prelude, text]), self.world.env, timeout=timeout)

    def ran(self, cmd: Command) -> bool:
        return self.incident.name in cmd.ran_in

    def mark(self, cmd: Command) -> None:
        if not self.ran(cmd):
            cmd.ran_in.append(self.incident.name)

    def label(self, cmd: Command, what: str) -> str:
        return f"{cmd.source} {what}"

    def call(self, cmd: Command, text: str, changes: dict | None = None, status: int | tuple = 200) -> ShellResult:
        """Run a curl command of the runbook (its JSON body adapted by `changes`); the answer,
        or RehearsalError when the status is not the one the runbook promises."""
        command = with_body(text, changes) if changes else text
        result = self.shell(command)
        self.mark(cmd)
        wanted = status if isinstance(status, tuple) else (status,)
        if result.rc != 0 or result.http_status not in wanted or not isinstance(result.body, dict):
            raise RehearsalError(
                f"{cmd.source}: HTTP {result.http_status} (expected {'/'.join(map(str, wanted))}), exit {result.rc}: "
                f"{fmt(result.body, 300) if result.body else result.stderr.strip()[:200]}"
            )
        return result

    def commands(self, kind: str) -> list[Command]:
        return [cmd for cmd in self.runbook if self.kind_of(cmd) == kind]

    def run(self, kind: str, *, again: bool = False, every: bool = False, values: dict | None = None, **context):
        """Run the runbook's command for step `kind`: the next one of that kind not run yet in this
        incident (`again`: the first one, once more; `every`: all not run yet), its placeholders
        filled in (`values`: for this step, e.g. the `<execution-uuid>` it is about). Returns what
        the step's handler returns (the last one's, with `every`)."""
        self.world.values.update(values or {})
        found = self.commands(kind)
        if not found:
            self.report.check(f"runbook shows a `{kind}` command", "present", "missing", False)
            return None
        if again:
            chosen = found[:1]
        else:
            chosen = [cmd for cmd in found if not self.ran(cmd)] or found[:1]
            if not every:
                chosen = chosen[:1]
        handler = getattr(self, f"step_{kind}")
        result = None
        for cmd in chosen:
            try:
                result = handler(cmd, self.fill(cmd.text), **context)
            except RehearsalError as exc:
                self.mark(cmd)
                self.report.check(self.label(cmd, kind), "runs as printed", str(exc)[:400], False)
                result = None
        return result

    def stop_background(self) -> None:
        for command in self.background:
            command.stop()

    def run_prelude(self) -> None:
        """The runbook's shell variables, in document order, before anything else."""
        for cmd in self.runbook:
            if self.kind_of(cmd) == "variable" and not self.ran(cmd):
                text = self.fill(cmd.text).strip()
                result = self.shell(text)
                self.mark(cmd)
                self.prelude.append(text)
                self.report.check(self.label(cmd, f"`{_short(cmd.one_line)}`"), "exit 0", f"exit {result.rc}")

    def run_rest(self) -> None:
        """Every generic command (SQL or shell without a step of its own) not run yet in this
        incident: it must succeed."""
        for cmd in self.runbook:
            kind = self.kind_of(cmd)
            if kind not in GENERIC or self.ran(cmd):
                continue
            if kind == "server":
                # A process the reader starts and leaves running; the rehearsal started its equivalent.
                self.mark(cmd)
                self.report.check(self.label(cmd, "(a server)"), "started by the rehearsal", "started by the rehearsal")
                continue
            text = self.fill(cmd.text)
            if kind == "sql":
                self.step_sql(cmd, text)
                continue
            result = self.shell(text)
            self.mark(cmd)
            ok = result.rc == 0 and (result.http_status is None or 200 <= result.http_status < 300)
            self.report.check(
                self.label(cmd, f"`{_short(cmd.one_line)}`"),
                "exit 0" + (", HTTP 2xx" if result.http_status else ""),
                f"exit {result.rc}"
                + (f", HTTP {result.http_status}" if result.http_status else "")
                + (f" {result.stderr.strip()[:80]}" if result.rc else ""),
                ok,
            )


def _short(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
