#!/usr/bin/env python3
"""Rehearse the on-call runbook against a real running service, end to end.

    .venv/bin/python devtools/rehearse.py                 # both incidents
    .venv/bin/python devtools/rehearse.py --incident regression --keep

For each incident it builds a scratch world and tells the incident's story with the runbook's
own commands:

  1. starts the mock CRM and the SMTP sink (devtools/mocks/) and the mock OIDC provider on free
     local ports;
  2. creates a scratch database on the configured PostgreSQL server (the same rule as the test
     suite: TEST_DATABASE_URL, DATABASE_URL, else the embedded server; see devtools/dbtools.py),
     migrates it with `flask --app wsgi db upgrade`, loads the incident scenario (rewritten to point
     at the mock CRM) with `flask --app wsgi scenario load`, creates an API key with
     `flask --app wsgi api-keys create`, starts the service (gunicorn with gunicorn.conf.py, through
     devtools/service.py) and two job workers (`flask --app wsgi worker`, through
     devtools/worker.py), and signs the on-call user in through the real OIDC flow;
  3. runs the commands of the runbook (fenced ```sql / ```bash blocks and inline commands of
     runbooks/*.md), each recognised by what it does (devtools/rehearsal/commands.py), with its
     placeholders filled in (`<plan_token>`, `<job_id>`, `<execution-uuid>`, `<key>`, ...) and the
     production URL replaced by the local service; SQL goes to the scratch database as written, curl
     commands run through bash exactly as printed (a private .curlrc only adds --silent and the
     status line), and so do the command-line client's (`python -m devtools.onramp ...`: its human
     output read, and the same command with --json where numbers are compared; `drain` in the
     background at a pseudo-terminal, its question answered "y"); each answer is compared with what
     the scenario says it must be (devtools/scenarios/*.expected.json), with what the story has done
     so far, and the client's with what curl and the API show:
       regression: summary (curl, client, SQL), previews (curl, client), a job from the client's
         plan (sent twice with its Idempotency-Key), paused, shown and resumed with the client,
         cancelled; a fresh client preview drained with the client's `drain` to completion although
         a worker is killed mid-way; verification SQL; hand-picked rows executed from their plan;
         dismiss; a payload patch; nothing sent while suppressed, one webhook and email for the
         patched row;
       outage: CRM down -> fresh signed triggers fail with integration errors -> a `drain` started
         too early halts by its brake and exits 1 -> the halted job listed and shown -> the CRM
         comes back -> resume -> paused and cancelled with the client (the CRM flaps) -> a new job
         from a fresh preview completes -> the rows the first job failed are replayed from a
         hand-picked plan; one signed webhook and one email per success; the client never prints
         a credential;
  4. checks the aftermath (history rows, projects, notifications, the mocks, the window, the logs).

A summary table is printed at the end; the exit status is 1 if any check failed (or a runbook
command was not run, or a placeholder was not understood), so CI catches a runbook that drifted
from the code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere

from devtools.mocks.crm import MockCrm  # noqa: E402
from devtools.mocks.smtp import SmtpSink  # noqa: E402
from devtools.rehearsal.common import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, SCENARIOS_DIR, RehearsalError  # noqa: E402
from devtools.rehearsal.incidents import build_incidents  # noqa: E402
from devtools.rehearsal.report import Report  # noqa: E402
from devtools.rehearsal.runbook import Command, parse_runbook, runbook_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rehearse the on-call runbook against a running service.")
    parser.add_argument("--incident", choices=("regression", "outage", "all"), default="all")
    parser.add_argument(
        "--runbook", type=Path, action="append", help="runbook markdown file(s) to walk (default: every runbooks/*.md)"
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to create scratch databases on "
        "(default: TEST_DATABASE_URL, DATABASE_URL, else the embedded server)",
    )
    parser.add_argument("--db-name", default="onramp_rehearsal", help="prefix of the scratch databases")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases and logs")
    args = parser.parse_args(argv)

    from app.config import normalize_database_url
    from devtools.dbtools import server_url

    args.server_url = normalize_database_url(args.database_url) if args.database_url else server_url()

    report = Report()
    paths = runbook_paths(args.runbook)
    runbook: list[Command] = []
    for path in paths:
        runbook.extend(parse_runbook(path))
    report.incident = "runbook"
    report.check(
        "runbook files found", "at least one runbooks/*.md", [str(p.name) for p in paths] or "none", bool(paths)
    )
    report.check("runbook commands found", "at least one", len(runbook), bool(runbook))

    from devtools.mock_oidc import MockOIDCProvider

    names = ["regression", "outage"] if args.incident == "all" else [args.incident]
    workdir = Path(tempfile.mkdtemp(prefix="onramp-rehearsal-"))
    crm = MockCrm(secrets=_all_secrets()).start()
    sink = SmtpSink(directory=workdir / "smtp-sink").start()
    oidc = MockOIDCProvider(client_id=OIDC_CLIENT_ID, client_secret=OIDC_CLIENT_SECRET).start()
    print(f"mock CRM {crm.url}, SMTP sink {sink.url}, OIDC {oidc.issuer}, work dir {workdir}", flush=True)
    started = time.monotonic()
    try:
        for cls, incident in build_incidents(names):
            report.incident = incident.name
            print(f"\n== {incident.name}: {incident.scenario.relative_to(REPO_ROOT)}", flush=True)
            rehearsal = cls(incident, report, runbook, args, workdir, crm, sink, oidc)
            try:
                rehearsal.setup()
                rehearsal.run()
            except RehearsalError as exc:
                report.check("rehearsal step", "completes", str(exc)[:300], False)
                if rehearsal.service is not None:
                    print(rehearsal.service.log_tail(40), file=sys.stderr)
            finally:
                rehearsal.teardown()
    finally:
        oidc.stop()
        sink.stop()
        crm.stop()

    report.incident = "runbook"
    for cmd in runbook:
        ran = sorted(set(cmd.ran_in))
        if ran or args.incident == "all":
            report.check(f"command {cmd.source} run", "by the rehearsal", ", ".join(ran) or "never", bool(ran))
        else:
            # Each story runs the steps it is about; only both together must cover every command.
            report.note(f"command {cmd.source} not run by this incident (`--incident all` requires every one)")

    print("\n" + report.table())
    failed = report.failed
    print(
        f"\n{len(report.checks) - len(failed)} of {len(report.checks)} checks passed in "
        f"{time.monotonic() - started:.0f}s; {sum(1 for c in runbook if c.ran_in)} of {len(runbook)} "
        f"runbook commands run" + (f"; logs kept in {workdir}" if args.keep or failed else "")
    )
    if failed:
        print("REHEARSAL FAILED:", file=sys.stderr)
        for c in failed:
            print(f"  {c.incident}: {c.step}: expected {c.expected}; got {c.actual}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _all_secrets() -> list[str]:
    found = []
    for name in ("regression-incident.json", "crm-outage.json"):
        for vendor in json.loads((SCENARIOS_DIR / name).read_text())["vendors"]:
            if vendor.get("integration"):
                found.append(vendor["integration"]["signing_secret"])
    return found


if __name__ == "__main__":
    sys.exit(main())
