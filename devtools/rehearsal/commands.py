"""What a runbook command is: the step of the procedure it stands for ("summary", "job_create",
"dismiss_exec", "job_history_sql", ...), read from the command itself (its SQL, or the curl's
method, path and JSON body), so the runbook's prose and order are free to change.

The command-line client's commands (`python -m devtools.onramp summary ...`) are kinds of their
own, named after their verb: "cli_summary", "cli_preview", "cli_drain", "cli_job_show", ...

An incident's story asks for steps by kind (`RunbookWalk.run("job_pause")`); a command whose kind
is generic ("sql", "shell") is run at the end of the story and must merely succeed.
"""

from __future__ import annotations

import re
import shlex

from devtools.rehearsal.common import LONG_RUNNING
from devtools.rehearsal.runbook import Command
from devtools.rehearsal.shell import curl_parts

GENERIC = frozenset({"sql", "shell", "variable", "server"})

_VARIABLE = re.compile(r"^(export\s+)?([A-Za-z_][A-Za-z0-9_]*=\S*)(\s+[A-Za-z_][A-Za-z0-9_]*=\S*)*\s*$")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")


def is_variable(text: str) -> bool:
    """`NAME=value` or `export A=1 B=2`: a line that only sets shell variables."""
    return bool(_VARIABLE.match(text.strip()))


def assignments(text: str) -> dict[str, str]:
    return dict(_ASSIGNMENT.findall(text.strip().removeprefix("export ")))


def expand(text: str, variables: dict[str, str]) -> str:
    """`$API/retry-jobs` with the runbook's own variables written out (to see the path)."""
    for _ in range(3):  # variables defined through other variables
        for name, value in variables.items():
            text = re.sub(rf"\$\{{?{re.escape(name)}\b\}}?", lambda _m, v=value: v, text)
    return text


def classify(cmd: Command, variables: dict[str, str]) -> str:
    if cmd.kind == "sql":
        return classify_sql(cmd.text)
    text = cmd.text.strip()
    if is_variable(text):
        return "variable"
    if any(p.search(text) for p in LONG_RUNNING):
        return "server"
    if text.startswith("curl"):
        return classify_curl(expand(text, variables))
    return classify_client(text) or "shell"


# The client's verbs (devtools/onramp/args.py); another verb is a generic command that must succeed.
CLIENT_VERBS = frozenset({"summary", "preview", "drain"})
CLIENT_JOB_VERBS = frozenset({"list", "show", "pause", "resume", "cancel"})
_CLIENT = re.compile(r"^(\S*/)?python3?\s+-m\s+devtools\.onramp(\s|$)")


def classify_client(text: str) -> str | None:
    """`python -m devtools.onramp jobs pause <job_id> ...` -> "cli_job_pause"; None for anything else."""
    if not _CLIENT.match(text):
        return None
    try:
        tokens = shlex.split(text.replace("\\\n", " "), comments=True)
    except ValueError:
        return None
    args = tokens[tokens.index("devtools.onramp") + 1 :]
    if args[:1] and args[0] in CLIENT_VERBS:
        return f"cli_{args[0]}"
    if args[:1] == ["jobs"] and args[1:2] and args[1] in CLIENT_JOB_VERBS:
        return f"cli_job_{args[1]}"
    return None


def classify_sql(text: str) -> str:
    flat = " ".join(text.lower().split())
    if "from or_ramp_executions" in flat and "group by vendor_id, ramp_id" in flat:
        return "blast_sql"
    if "procrastinate_workers" in flat:
        return "workers_sql"
    if "or_retry_job_events" in flat:
        return "job_events_sql"
    if "or_notification_outbox" in flat and "<job_id>" in flat:
        return "outbox_sql"
    if "workflow_history_action_dismissed" in flat:
        return "dismiss_sql"
    if "payload_patch" in flat:
        return "patch_sql"
    if "workflow_history_action_replayed" in flat and "<job_id>" in flat:
        return "job_history_sql"
    if "workflow_history_action_replayed" in flat and "<batch_id>" in flat:
        return "batch_history_sql"
    if "from or_projects" in flat and "count(" in flat:
        return "projects_sql"
    return "sql"


def _method(tokens: list[str]) -> str:
    for i, token in enumerate(tokens[:-1]):
        if token in ("-X", "--request"):
            return tokens[i + 1].upper()
    return "POST" if any(t in ("-d", "--data", "--data-raw", "--data-binary", "--json") for t in tokens) else "GET"


def classify_curl(text: str) -> str:
    tokens, _, body = curl_parts(text)
    method = _method(tokens)
    url = next((t for t in tokens[1:] if "://" in t or t.startswith("/") or "/api/" in t), "")
    path = re.sub(r"^[a-z]+://[^/]+", "", url).split("?")[0]
    body = body if isinstance(body, dict) else {}
    if path.endswith("/error-summary"):
        return "summary"
    if path.endswith("/dismiss-batch"):
        return "dismiss_dry" if body.get("dry_run", True) else "dismiss_exec"
    if path.endswith("/retry-batch"):
        dry = body.get("dry_run", True)
        if "plan_token" in body:
            return "plan_dry" if dry else "plan_execute"
        if "payload_patches" in body:
            return "patch_dry" if dry else "patch_exec"
        if "execution_uuids" in body:
            return "hand_picked_dry" if dry else "hand_picked_exec"
        return "dry_run" if dry else "window_execute"
    match = re.search(r"/retry-jobs(/[^/]+)?(/(pause|resume|cancel))?$", path)
    if match:
        if match.group(3):
            return f"job_{match.group(3)}"
        if match.group(1):
            return "job_get"
        return "job_create" if method == "POST" else "job_list"
    return "shell"
