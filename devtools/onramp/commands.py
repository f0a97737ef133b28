"""The verbs, and `main`: arguments, environment, one call to the service, output, exit code.

Every failure ends as one line on stderr and a documented exit code (`errors.Exit`); nothing the
client prints, tracebacks included, may carry a credential (`OnrampClient.redact`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import IO

from devtools.onramp import drain, render
from devtools.onramp.args import parse, scope_body, summary_params
from devtools.onramp.client import OnrampClient, settings_from_env
from devtools.onramp.errors import ApiError, Exit, Unreachable, UsageError
from devtools.onramp.pending import PendingDrains, state_dir


def summary(client: OnrampClient, args: argparse.Namespace, io: drain.Io) -> int:
    answer = client.error_summary(summary_params(args))
    if args.json:
        io.emit_json(answer)
    else:
        render.summary(io.human, answer)
    return Exit.OK


def preview(client: OnrampClient, args: argparse.Namespace, io: drain.Io) -> int:
    answer = client.retry_batch({**scope_body(args), "dry_run": True})
    if args.json:
        io.emit_json(answer)
    else:
        render.preview(io.human, answer, of_plan=args.plan is not None)
    return Exit.OK


def jobs(client: OnrampClient, args: argparse.Namespace, io: drain.Io) -> int:
    verb = args.job_command
    if verb == "list":
        params = {k: str(v) for k, v in (("state", args.state), ("limit", args.limit)) if v is not None}
        found = client.list_jobs(params)
        if args.json:
            io.emit_json({"jobs": found})
        else:
            render.jobs_table(io.human, found)
        return Exit.OK
    if verb == "show":
        job = client.get_job(args.job_id)
        if args.json:
            io.emit_json(job)
        else:
            render.job_detail(io.human, job)
        return Exit.OK
    job = client.control_job(args.job_id, verb, reason=args.reason)
    if args.json:
        io.emit_json(job)
    else:
        io.say(f"Job {job['job_id']} is now {job['state']}.")
        io.say(render.progress_line(job))
    return Exit.OK


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = parse(argv)  # usage errors exit 2 here, before the environment is read
    errors = render.make_console(stderr)
    io = drain.Io(
        human=errors if args.json else render.make_console(stdout),
        prompt_to=stderr,
        stdin=stdin,
        json_out=stdout if args.json else None,
        interactive=stdin.isatty(),
    )
    client: OnrampClient | None = None

    def fail(text: str, code: Exit) -> int:
        stderr.write((client.redact(text) if client else text) + "\n")
        stderr.flush()
        return code

    try:
        client = OnrampClient(settings_from_env(environ))
        if args.command == "summary":
            return summary(client, args, io)
        if args.command == "preview":
            return preview(client, args, io)
        if args.command == "drain":
            return drain.run(client, args, io, PendingDrains(state_dir(environ)))
        return jobs(client, args, io)
    except UsageError as exc:
        return fail(f"usage error: {exc}", Exit.USAGE)
    except ApiError as exc:
        if args.json and exc.body is not None:
            io.emit_json(exc.body)
        return fail(exc.line(), Exit.API_ERROR)
    except Unreachable as exc:
        return fail(exc.line(), Exit.UNREACHABLE)
    except KeyboardInterrupt:
        return fail("interrupted", Exit.INTERRUPTED)
    except Exception as exc:  # a bug in the client: one line, no traceback (it could quote a value)
        return fail(f"internal error in the client: {type(exc).__name__}: {exc}", Exit.CLIENT_BUG)
