"""The command line: verbs, flags (named after the API's fields) and the request bodies they make.

Flags are parsed into the types the API expects and otherwise passed on as given: the service
validates every value (one set of rules), and its 400 names the field.
"""

from __future__ import annotations

import argparse
from typing import Any

PROG = "python -m devtools.onramp"

# Scope and filter flags of retry-batch (SPEC section 3), as (flag dest, API field).
SCOPE_FIELDS = (
    "since",
    "until",
    "vendor_ids",
    "ramp_uuids",
    "execution_uuids",
    "error_pattern",
    "force_retry",
    "max_attempts",
    "workflow_version",
)
JOB_CONTROL_FIELDS = {
    "rate": "max_replays_per_second",
    "halt_error_rate": "halt_error_rate",
    "halt_window": "halt_window",
}


def comma_list(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"empty item in the comma-separated list {value!r}")
    return items


def comma_ints(value: str) -> list[int]:
    items = comma_list(value)
    try:
        return [int(item) for item in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {value!r}") from None


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON (for scripts) instead of tables")


def _scope_flags(parser: argparse.ArgumentParser, *, with_plan: bool) -> None:
    scope = parser.add_argument_group("scope and filters (the fields of retry-batch)")
    scope.add_argument("--since", help="ISO-8601 start of the window (naive times are UTC)")
    scope.add_argument("--until", help="end of the window, exclusive (default: now)")
    scope.add_argument("--vendor-ids", type=comma_ints, metavar="1,2", help="only these vendors")
    scope.add_argument("--ramp-uuids", type=comma_list, metavar="UUID,...", help="only these ramps")
    scope.add_argument(
        "--execution-uuids", type=comma_list, metavar="UUID,...", help="hand-picked rows (instead of a window)"
    )
    scope.add_argument("--error-pattern", help="case-insensitive substring of the last error message")
    scope.add_argument("--force-retry", action="store_true", default=None, help="also replay config errors")
    scope.add_argument(
        "--max-attempts", type=int, metavar="N", help="replay rows with fewer than N attempts (default 1)"
    )
    scope.add_argument("--workflow-version", choices=("original", "latest"), help="version to run (default original)")
    if with_plan:
        scope.add_argument("--plan", metavar="TOKEN", help="a preview's plan token instead of a scope")
    notify = parser.add_mutually_exclusive_group()
    notify.add_argument(
        "--suppress-notifications",
        dest="suppress_notifications",
        action="store_true",
        default=None,
        help="record webhooks and emails as suppressed, never send them",
    )
    notify.add_argument(
        "--notify",
        dest="suppress_notifications",
        action="store_false",
        help="send webhooks and emails (the API's default; with --plan: the plan's setting)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command-line client of the onramp retry service (HTTP only). Credentials come from the"
        " environment: ONRAMP_URL with ONRAMP_API_KEY + ONRAMP_API_SECRET, or ONRAMP_SESSION.",
        epilog="Exit codes: 0 ok; 1 the drained job did not complete (halted, failed, cancelled) or the drain"
        " was declined; 2 usage; 3 API error; 4 cannot reach the service; 5 client bug; 130 interrupted.",
    )
    verbs = parser.add_subparsers(dest="command", required=True, metavar="VERB")

    summary = verbs.add_parser("summary", help="blast radius: the window's failures grouped (error-summary)")
    summary.add_argument("--since", required=True, help="ISO-8601 start of the window")
    summary.add_argument("--until", help="end of the window, exclusive (default: now)")
    summary.add_argument("--vendor-ids", type=comma_ints, metavar="1,2", help="only these vendors")
    summary.add_argument(
        "--group-by", type=comma_list, metavar="vendor,ramp,...", help="vendor, ramp, category, error_type"
    )
    _json_flag(summary)

    preview = verbs.add_parser("preview", help="dry run of a scope (or what is left of a plan); prints a plan token")
    _scope_flags(preview, with_plan=True)
    _json_flag(preview)

    drain = verbs.add_parser("drain", help="preview, confirm, then drain in a background job with a progress bar")
    _scope_flags(drain, with_plan=True)
    pace = drain.add_argument_group("the job's pace and brake")
    pace.add_argument("--rate", type=float, metavar="N", help="max replays per second over all workers (default 5)")
    pace.add_argument("--halt-error-rate", type=float, metavar="X", help="brake: failure share 0..1 (default 0.2)")
    pace.add_argument("--halt-window", type=int, metavar="N", help="brake: over the last N replays (default 25)")
    drain.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _json_flag(drain)

    jobs = verbs.add_parser("jobs", help="list, show, pause, resume or cancel retry jobs")
    job_verbs = jobs.add_subparsers(dest="job_command", required=True, metavar="JOB_VERB")
    listing = job_verbs.add_parser("list", help="jobs, newest first")
    listing.add_argument("--state", help="queued, running, paused, halted, cancelled, completed or failed")
    listing.add_argument("--limit", type=int, metavar="N", help="at most N jobs (default 20, up to 100)")
    _json_flag(listing)
    show = job_verbs.add_parser("show", help="one job: state, progress, recent errors")
    show.add_argument("job_id", metavar="JOB_ID")
    _json_flag(show)
    for action in ("pause", "resume", "cancel"):
        move = job_verbs.add_parser(action, help=f"{action} a job")
        move.add_argument("job_id", metavar="JOB_ID")
        move.add_argument("--reason", metavar="TEXT", help="recorded with the move")
        _json_flag(move)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("preview", "drain"):
        given = [name for name in SCOPE_FIELDS if getattr(args, name) is not None]
        if args.plan is not None and given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            parser.error(f"--plan cannot be combined with {flags}: the plan fixed its scope and filters")
        if args.plan is None and args.since is None and args.execution_uuids is None:
            parser.error("give --plan TOKEN, or a scope: --since (a window) or --execution-uuids (hand-picked rows)")
    return args


def scope_body(args: argparse.Namespace) -> dict[str, Any]:
    """The retry-batch fields the flags gave (nothing else: the service fills its defaults)."""
    if args.plan is not None:
        body: dict[str, Any] = {"plan_token": args.plan}
    else:
        body = {name: getattr(args, name) for name in SCOPE_FIELDS if getattr(args, name) is not None}
    if args.suppress_notifications is not None:
        body["suppress_notifications"] = args.suppress_notifications
    return body


def job_controls(args: argparse.Namespace) -> dict[str, Any]:
    return {field: getattr(args, dest) for dest, field in JOB_CONTROL_FIELDS.items() if getattr(args, dest) is not None}


def summary_params(args: argparse.Namespace) -> dict[str, str]:
    params = {"since": args.since}
    if args.until is not None:
        params["until"] = args.until
    if args.vendor_ids is not None:
        params["vendor_ids"] = ",".join(str(v) for v in args.vendor_ids)
    if args.group_by is not None:
        params["group_by"] = ",".join(args.group_by)
    return params
