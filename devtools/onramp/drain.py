"""`drain`: show what will be drained, confirm, start a retry job, follow it until it ends.

The job runs in the service's workers, not here: this process only starts it and watches it, so
losing this process (Ctrl-C, a closed laptop) never stops or harms the drain. Ctrl-C asks whether
to pause the job or leave it running.

What is drained is always a plan: with `--plan` the given one, otherwise the plan of the dry run
shown just before the question, so the job replays exactly the rows the operator saw.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from devtools.onramp import render
from devtools.onramp.args import PROG, job_controls, scope_body
from devtools.onramp.client import OnrampClient
from devtools.onramp.errors import ApiError, Exit, Unreachable, UsageError
from devtools.onramp.pending import PendingDrains, fingerprint

POLL_SECONDS = 2.0
# How long the service may stay out of reach while a job is followed before the client gives up
# (the job goes on regardless).
GIVE_UP_SECONDS = 120.0
# States that end the wait. `paused` does not: someone may resume it (Ctrl-C leaves the wait).
ENDS = frozenset({"completed", "halted", "failed", "cancelled"})
PAUSE_REASON = "paused from the command line (Ctrl-C during drain)"


@dataclass
class Io:
    human: Console  # tables, messages, progress: stdout, or stderr with --json
    prompt_to: IO[str]  # questions go to stderr
    stdin: IO[str]
    json_out: IO[str] | None  # stdout with --json
    interactive: bool  # stdin is a terminal: someone can answer

    def say(self, text: str) -> None:
        self.human.print(text, soft_wrap=True)

    def ask(self, question: str) -> str | None:
        """One line from stdin, lower-cased; None on end of input or a second Ctrl-C."""
        self.prompt_to.write(question)
        self.prompt_to.flush()
        try:
            line = self.stdin.readline()
        except KeyboardInterrupt:
            self.prompt_to.write("\n")
            return None
        return line.strip().lower() if line else None

    def emit_json(self, data: object) -> None:
        if self.json_out is not None:
            self.json_out.write(json.dumps(data, indent=2) + "\n")
            self.json_out.flush()


def _notifications(args: argparse.Namespace) -> str:
    if args.suppress_notifications:
        return "suppressed (nothing is sent)"
    if args.suppress_notifications is False:
        return "SENT (webhooks and emails reach customers)"
    if args.plan is not None:
        return "as set when the plan was previewed"
    return "SENT (webhooks and emails reach customers; --suppress-notifications keeps them)"


def run(client: OnrampClient, args: argparse.Namespace, io: Io, store: PendingDrains) -> int:
    if not args.yes and not io.interactive:
        raise UsageError("stdin is not a terminal, so nobody can confirm the drain: pass --yes to drain without asking")
    controls = job_controls(args)
    fp = fingerprint(client.url, {"verb": "drain", "scope": scope_body(args), "controls": controls})
    pending = store.find(fp)
    if pending is not None:
        minutes = max(0, round((time.time() - pending.sent_at) / 60))
        io.say(
            f"An earlier run of this command sent its request {minutes} min ago and got no answer, so its job may"
            " have started. This run re-sends the same request with the same Idempotency-Key: the service answers"
            " with that job if it exists, and never starts a second one."
        )
        body, key = pending.body, pending.key
        question = "Re-send it? [y/N] "
    else:
        dry_run = client.retry_batch({**scope_body(args), "dry_run": True})
        render.preview(io.human, dry_run, plan_hint=False, of_plan=args.plan is not None)
        eligible = dry_run["summary"]["eligible"]
        if not eligible:
            io.say("Nothing to drain: no job started.")
            io.emit_json(dry_run)
            return Exit.OK
        body = {"plan_token": dry_run["plan_token"], **controls}
        if args.suppress_notifications is not None:
            body["suppress_notifications"] = args.suppress_notifications
        key = f"onramp-cli-{uuid.uuid4()}"
        pace = f"at most {args.rate:g} replays/s" if args.rate is not None else "at the default pace (5 replays/s)"
        question = (
            f"Drain these {eligible} rows (plan {dry_run['plan_token']}) in a background job, {pace},"
            f" notifications {_notifications(args)}? [y/N] "
        )
    if not args.yes and io.ask(question) not in ("y", "yes"):
        io.say("Nothing started.")
        return Exit.NOT_COMPLETED
    if pending is None:
        store.remember(fp, key, body)
    job = _start(client, body, key, fp, store, io)
    return follow(client, job, io)


def _start(client: OnrampClient, body: dict, key: str, fp: str, store: PendingDrains, io: Io) -> dict:
    rerun = "Run the same command again: it re-sends this request with the same Idempotency-Key, so it cannot start a second job."
    try:
        job, created = client.create_job(body, idempotency_key=key)
    except Unreachable:
        io.say(f"No answer to the request that starts the job: it may or may not have started. {rerun}")
        raise
    except ApiError as exc:
        if exc.status >= 500:  # nothing was decided (503) or we cannot tell: keep the key
            io.say(f"The service failed to start the job. {rerun}")
        else:
            store.forget(fp)
        raise
    except KeyboardInterrupt:
        io.say(f"Interrupted before the service answered: the job may or may not have started. {rerun}")
        raise
    store.forget(fp)
    if created:
        io.say(f"Started job {job['job_id']}: {job['progress']['total']} rows.")
    else:
        io.say(f"Job {job['job_id']} was already started by this command (same Idempotency-Key); following it.")
    return job


# ---- following a job --------------------------------------------------------------------------


class _Lines:
    """Plain lines, one each time the state or the counts change (not a terminal)."""

    def __init__(self, io: Io) -> None:
        self.io = io
        self.last: tuple | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, job: dict) -> None:
        seen = (job["state"], job["progress"]["done"], job.get("state_reason"))
        if seen != self.last:
            self.last = seen
            self.io.say(render.progress_line(job))

    def note(self, text: str) -> None:
        self.io.say(text)


class _Bar:
    """A rich progress bar with the counts, the rate and the ETA the service measures."""

    def __init__(self, io: Io) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[pace]}"),
            console=io.human,
            refresh_per_second=4,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, job: dict) -> None:
        p = job["progress"]
        fields = dict(
            description=job["state"],
            total=max(p["total"], 1),
            completed=p["done"] if p["total"] else 1,
            counts=render.counts(p),
            pace=f"{job.get('rate_per_second') or 0:.1f}/s, ETA {render.duration(job.get('eta_seconds'))}",
        )
        if self.task is None:
            self.task = self.progress.add_task(**fields)
        else:
            self.progress.update(self.task, **fields)

    def note(self, text: str) -> None:
        self.progress.console.print(text, soft_wrap=True)


def watch(
    client: OnrampClient,
    job: dict,
    display,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Poll the job every POLL_SECONDS until it ends; the last answer. A service out of reach for
    less than GIVE_UP_SECONDS is waited out (the job itself goes on in the workers)."""
    last_answer = clock()
    lost = False
    while True:
        display.update(job)
        if job["state"] in ENDS:
            return job
        sleep(POLL_SECONDS)
        try:
            job = client.get_job(job["job_id"])
        except (Unreachable, ApiError) as exc:
            transient = isinstance(exc, Unreachable) or exc.status in (429, 502, 503, 504)
            if not transient or clock() - last_answer > GIVE_UP_SECONDS:
                display.note(
                    f"Gave up following job {job['job_id']}; it goes on. Check it with: {PROG} jobs show {job['job_id']}"
                )
                raise
            if not lost:
                display.note(f"{exc.line()}; the job goes on in the workers, still asking every {POLL_SECONDS:g} s")
                lost = True
            continue
        if lost:
            display.note("In contact with the service again.")
            lost = False
        last_answer = clock()


def follow(client: OnrampClient, job: dict, io: Io) -> int:
    display = _Bar(io) if io.human.is_terminal else _Lines(io)
    try:
        with display:
            job = watch(client, job, display)
    except KeyboardInterrupt:
        return on_interrupt(client, job["job_id"], io)
    return finish(job, io)


def finish(job: dict, io: Io) -> int:
    """The job's end: its state and reason; 0 only for completed."""
    io.emit_json(job)
    job_id, state, p = job["job_id"], job["state"], job["progress"]
    if state == "completed":
        io.say(f"Job {job_id} completed: {p['total']} rows, {render.counts(p)}.")
        return Exit.OK
    io.say(f"Job {job_id} {state}: {job.get('state_reason') or 'no reason given'}.")
    io.say(f"Progress: {p['done']}/{p['total']} done ({render.counts(p)}).")
    render.recent_errors(io.human, job, limit=5)
    if state == "halted":
        io.say(f"Resume it (the brake starts afresh): {PROG} jobs resume {job_id}")
        io.say(f"Or cancel it: {PROG} jobs cancel {job_id}")
    return Exit.NOT_COMPLETED


def on_interrupt(client: OnrampClient, job_id: str, io: Io) -> int:
    """Ctrl-C while following: pause the job, or leave it running (also on end of input)."""
    io.say("\nInterrupted. The job runs in the service's workers, not in this process.")
    answer = ""
    for _ in range(3):
        answer = io.ask("Pause the job, or leave it running? [p]ause / [l]eave running: ")
        if answer is None or answer in ("p", "pause", "l", "leave"):
            break
    if answer not in ("p", "pause"):
        io.say(
            f"Left job {job_id} running. Follow it: {PROG} jobs show {job_id}   pause it: {PROG} jobs pause {job_id}"
        )
        return Exit.INTERRUPTED
    try:
        job = client.control_job(job_id, "pause", reason=PAUSE_REASON)
    except ApiError as exc:
        if exc.code != "invalid_transition":
            raise
        job = client.get_job(job_id)
        io.say(f"Job {job_id} is {job['state']}: nothing to pause.")
        return finish(job, io) if job["state"] in ENDS else Exit.INTERRUPTED
    io.emit_json(job)
    p = job["progress"]
    io.say(f"Paused job {job_id} at {p['done']}/{p['total']} done ({render.counts(p)}).")
    io.say(f"Resume it with: {PROG} jobs resume {job_id}")
    return Exit.INTERRUPTED
