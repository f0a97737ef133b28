#!/usr/bin/env python3
"""Write the incident scenarios (SPEC section 5) and what the runbook should find in them.

    python devtools/scenarios/make_incidents.py [--out devtools/scenarios] [--crm-url URL]

Writes, for each incident, `<name>.json` (the scenario, loadable with
`flask --app wsgi scenario load`) and `<name>.expected.json` (the numbers a rehearsal must see:
blast radius per vendor and ramp, dry-run summary, skip reasons). Output is deterministic (uuids
are derived from fixed names), so the committed files only change when this script does.

regression-incident: a bad deploy at 2026-05-11T12:30Z makes Project Create fail with
  UnboundLocalError ("cannot access local variable 'new_task' ...") 300 times, mixed with rows that
  hit every skip reason a window-scoped call can report, older failures before the window, and
  normal successful traffic.
crm-outage: the vendors' CRM answers 503/429/timeouts from 2026-05-12T09:00Z; executions fail in
  `fetch_crm_record` with integration errors (plus a few config errors that must stay skipped).
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_CRM_URL = "http://127.0.0.1:9300"
NAMESPACE = uuid.UUID("5b0e7d2a-58c4-4c1e-9a51-0b7c2f3e9d10")

REGRESSION_SINCE = "2026-05-11T12:30:00Z"
# The runbook's examples use the window [12:30, 15:00); the whole incident lies inside it, so the
# examples with and without `until` see the same rows.
REGRESSION_UNTIL = "2026-05-11T15:00:00Z"
REGRESSION_PATTERN = "new_task"
REGRESSION_TYPE = "UnboundLocalError"
REGRESSION_MESSAGE = "cannot access local variable 'new_task' where it is not associated with a value"
OUTAGE_SINCE = "2026-05-12T09:00:00Z"

FULL_STEPS = [
    {"type": "fetch_crm_record"},
    {"type": "find_or_create_account"},
    {"type": "create_project"},
    {"type": "notify"},
]
DEFAULT_STEPS = [{"type": "find_or_create_account"}, {"type": "create_project"}, {"type": "notify"}]


def uid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


def ts(base: str, minutes: float) -> str:
    start = datetime.fromisoformat(base.replace("Z", "+00:00"))
    return (start + timedelta(minutes=minutes)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def integration(crm_url: str, provider: str, secret: str, path: str, **overrides: Any) -> dict:
    data = {
        "provider": provider,
        "user_configured": True,
        "token_revoked": False,
        "api_base_url": crm_url,
        "webhook_url": f"{crm_url}/webhooks/{path}",
        "signing_secret": secret,
    }
    data.update(overrides)
    return data


def ramp(
    name: str,
    key: str,
    vendor_id: int,
    status: str = "active",
    current_version: int = 1,
    versions: list[dict] | None = None,
) -> dict:
    return {
        "uuid": uid("ramp", key),
        "vendor_id": vendor_id,
        "name": name,
        "status": status,
        "current_version": current_version,
        "versions": versions or [{"version": 1, "draft": False, "steps": DEFAULT_STEPS}],
    }


def payload(n: int | str, company: str, *, with_id: bool = True, owner: bool = True) -> dict:
    company_block: dict[str, Any] = {"name": f"{company} {n}"}
    if with_id:
        company_block["id"] = f"c-{n}"
    data: dict[str, Any] = {"company": company_block}
    if owner:
        data["owner"] = {"email": f"owner{n}@customer.example"}
    return data


class Builder:
    """Collects executions and, for each one, the fate a rehearsal should see."""

    def __init__(self, scenario_key: str, since: str):
        self.key = scenario_key
        self.since = since
        self.executions: list[dict] = []
        self.fate: dict[str, str] = {}  # execution uuid -> "eligible" | skip reason | "out_of_scope"
        self.counter = 0

    def add(
        self,
        ramp_: dict,
        minutes: float,
        fate: str,
        *,
        status: str = "ERROR",
        error_type: str | None = None,
        message: str | None = None,
        trigger_key: str | None = None,
        data: dict | None = None,
        version: int | None = None,
        replay_attempts: int = 0,
        has_project: bool = False,
        base: str | None = None,
    ) -> dict:
        self.counter += 1
        n = self.counter
        row: dict[str, Any] = {
            "uuid": uid(self.key, "execution", n),
            "ramp_uuid": ramp_["uuid"],
            "version": version if version is not None else ramp_["current_version"],
            "status_code": status,
            "created_at": ts(base or self.since, minutes),
            "trigger_key": trigger_key or f"deal-{n}",
            "payload": data if data is not None else payload(n, "Customer"),
            "replay_attempts": replay_attempts,
            "has_project": has_project,
        }
        if error_type:
            row["error_type"] = error_type
            row["error_message"] = message
        self.executions.append(row)
        self.fate[row["uuid"]] = fate
        return row


def regression(crm_url: str) -> tuple[dict, dict]:
    vendors = [
        {"id": 1, "name": "Acme", "integration": integration(crm_url, "hubspot", "acme-signing-secret", "acme")},
        {
            "id": 2,
            "name": "Globex",
            "integration": integration(crm_url, "salesforce", "globex-signing-secret", "globex"),
        },
        {
            "id": 3,
            "name": "Initech",  # never finished connecting its CRM
            "integration": integration(crm_url, "hubspot", "initech-signing-secret", "initech", user_configured=False),
        },
        {
            "id": 4,
            "name": "Umbrella",  # token revoked by the customer
            "integration": integration(
                crm_url, "salesforce", "umbrella-signing-secret", "umbrella", token_revoked=True
            ),
        },
        {
            "id": 5,
            "name": "Hooli",  # token expired before the incident
            "integration": integration(
                crm_url, "hubspot", "hooli-signing-secret", "hooli", token_expires_at="2026-05-01T00:00:00Z"
            ),
        },
        {"id": 6, "name": "Vandelay", "integration": None},  # no CRM at all
    ]
    acme = ramp(
        "Project Create",
        "regression/acme-project-create",
        1,
        current_version=2,
        versions=[
            {"version": 1, "draft": False, "steps": DEFAULT_STEPS},
            {"version": 2, "draft": False, "steps": FULL_STEPS},
        ],
    )
    globex = ramp("Project Create", "regression/globex-project-create", 2)
    archived = ramp("Legacy Onboarding", "regression/acme-legacy", 1, status="archived")
    deleted = ramp("Old Flow", "regression/acme-old-flow", 1, status="deleted")
    draft_ramp = ramp("Enterprise Onboarding", "regression/globex-enterprise", 2, status="draft")
    draft_version = ramp(
        "Onboarding v2",
        "regression/globex-onboarding-v2",
        2,
        versions=[
            {"version": 1, "draft": False, "steps": DEFAULT_STEPS},
            {"version": 2, "draft": True, "steps": DEFAULT_STEPS},
        ],
    )
    initech = ramp("Project Create", "regression/initech", 3)
    umbrella = ramp("Project Create", "regression/umbrella", 4)
    hooli = ramp("Project Create", "regression/hooli", 5)
    vandelay = ramp("Project Create", "regression/vandelay", 6)
    ramps = [acme, globex, archived, deleted, draft_ramp, draft_version, initech, umbrella, hooli, vandelay]

    b = Builder("regression", REGRESSION_SINCE)
    regress = dict(error_type=REGRESSION_TYPE, message=REGRESSION_MESSAGE)

    # Normal traffic before the deploy (successes and a few unrelated failures, out of scope).
    for i in range(20):
        b.add(acme if i % 2 else globex, -240 + i * 10, "out_of_scope", status="SUCCESS", has_project=True)
    for i in range(3):
        b.add(acme, -150 + i * 20, "out_of_scope", error_type="KeyError", message="'stage'")
    for i in range(3):
        # The same error message before the window: the runbook's time filter keeps these out.
        b.add(globex, -60 + i * 10, "out_of_scope", **regress)

    # The regression: 300 failures in the two hours after the deploy (inside the runbook's example
    # window [12:30, 15:00)), on both vendors' Project Create.
    for i in range(300):
        minutes = 1 + i * 0.45
        if i % 3 == 2:
            b.add(globex, minutes, "eligible", **regress)
        elif i % 3 == 1 and i < 240:
            b.add(acme, minutes, "eligible", version=2, **regress)  # current version: no drift
        else:
            b.add(acme, minutes, "eligible", version=1, **regress)  # ran the old version: drift
    # Successful traffic during the incident (ramps that did not hit the bug path).
    for i in range(40):
        b.add(acme if i % 2 else globex, 5 + i * 3, "out_of_scope", status="SUCCESS", has_project=True)

    # Rows that must be skipped, one group per reason (the first applicable reason wins).
    for i in range(5):
        b.add(acme, 10 + i * 13, "project_already_exists", has_project=True, version=1, **regress)
    for i in range(4):
        b.add(deleted, 12 + i * 11, "ramp_deleted", **regress)
    for i in range(4):
        b.add(archived, 14 + i * 11, "ramp_archived", **regress)
    for i in range(3):
        b.add(draft_ramp, 16 + i * 11, "workflow_is_draft", **regress)
    for i in range(2):
        b.add(draft_version, 18 + i * 11, "workflow_is_draft", version=2, **regress)
    for i in range(5):
        key = f"deal-dup-{i}"
        b.add(acme, 20 + i * 17, "duplicate_trigger_succeeded", trigger_key=key, version=1, **regress)
        # The CRM fired the same trigger again ten minutes later and that run succeeded.
        b.add(acme, 30 + i * 17, "out_of_scope", status="SUCCESS", trigger_key=key, has_project=True)
    for i in range(3):
        b.add(
            globex,
            22 + i * 9,
            "config_error",
            error_type="MissingTriggerField",
            message="trigger payload has no 'company.id'",
            data=payload(f"noid-{i}", "Customer", with_id=False),
        )
    for i in range(3):
        b.add(
            globex,
            24 + i * 9,
            "config_error",
            error_type="MissingRelatedAccount",
            message=f"CRM has no record 'deal-missing-{i}'",
        )
    for r in (initech, initech, initech, umbrella, umbrella, umbrella, hooli, hooli, vandelay, vandelay):
        b.add(r, 26 + b.counter % 50, "integration_disconnected", **regress)
    for i in range(3):
        b.add(acme, 28 + i * 21, "error_pattern_mismatch", version=1, error_type="KeyError", message="'stage'")
    for i in range(3):
        b.add(
            globex,
            29 + i * 21,
            "error_pattern_mismatch",
            error_type="TypeError",
            message="'NoneType' object is not subscriptable",
        )
    for i in range(4):
        b.add(acme, 32 + i * 15, "retry_limit_reached", version=1, replay_attempts=1, **regress)

    scenario = {
        "vendors": vendors,
        "ramps": ramps,
        "executions": sorted(b.executions, key=lambda e: e["created_at"]),
        "users": [
            {"email": "oncall@example.com", "role": "ONRAMP_ADMIN"},
            {"email": "viewer@example.com", "role": "ONRAMP_VIEWER"},
        ],
        "api_keys": [],
    }
    late = [e["uuid"] for e in b.executions if e["created_at"] >= REGRESSION_UNTIL and e["status_code"] == "ERROR"]
    assert not late, f"regression rows after {REGRESSION_UNTIL}: {late[:3]}"
    expected = _expectations(scenario, b, since=REGRESSION_SINCE, error_pattern=REGRESSION_PATTERN)
    expected["incident"] = "regression"
    expected["hand_picked"] = {
        "execution_uuids": [
            next(
                u
                for u, f in b.fate.items()
                if f == "out_of_scope"
                and _row(b, u)["status_code"] == "SUCCESS"
                and _row(b, u)["created_at"] >= REGRESSION_SINCE
            ),
            next(u for u, f in b.fate.items() if f == "config_error"),
            uid("regression", "not-a-real-execution"),
        ],
        "reasons": ["status_not_error", "config_error", "not_found"],
    }
    # The toolbox steps of the runbook, on rows the incident already has (their fate above is
    # what the preview shows before these steps change it):
    # - a few hand-picked rows that an earlier on-call replayed once, without luck: one more try;
    small = [u for u, f in b.fate.items() if f == "retry_limit_reached"]
    expected["small_batch"] = {"execution_uuids": small, "fate": "retry_limit_reached", "max_attempts": 2}
    # - deals deleted in the CRM: the customer is gone, dismiss them;
    gone = [u for u, f in b.fate.items() if f == "config_error" and _row(b, u)["error_type"] == "MissingRelatedAccount"]
    expected["dismiss"] = {"execution_uuids": gone, "fate": "config_error"}
    # - a trigger that arrived without company.id: replay it with the id patched in.
    picked = set(expected["hand_picked"]["execution_uuids"])
    no_id = next(
        u
        for u, f in b.fate.items()
        if f == "config_error" and _row(b, u)["error_type"] == "MissingTriggerField" and u not in picked
    )
    expected["patch"] = {"execution_uuid": no_id, "fate": "config_error", "payload": _row(b, no_id)["payload"]}
    return scenario, expected


def outage(crm_url: str) -> tuple[dict, dict]:
    vendors = [
        {"id": 1, "name": "Acme", "integration": integration(crm_url, "hubspot", "acme-signing-secret", "acme")},
        {
            "id": 2,
            "name": "Globex",
            "integration": integration(crm_url, "salesforce", "globex-signing-secret", "globex"),
        },
    ]
    acme = ramp(
        "Project Create",
        "outage/acme-project-create",
        1,
        versions=[{"version": 1, "draft": False, "steps": FULL_STEPS}],
    )
    globex = ramp(
        "Project Create",
        "outage/globex-project-create",
        2,
        versions=[{"version": 1, "draft": False, "steps": FULL_STEPS}],
    )
    b = Builder("outage", OUTAGE_SINCE)
    for i in range(20):
        b.add(acme if i % 2 else globex, -200 + i * 9, "out_of_scope", status="SUCCESS", has_project=True)
    failures = (
        [("IntegrationConnectionError", "CRM answered 503")] * 24
        + [("RateLimitError", "CRM rate limit hit (429)")] * 10
        + [("ModuleTimeoutError", "CRM did not answer within 5s")] * 6
    )
    for i, (error_type, message) in enumerate(failures):
        b.add(acme if i % 2 else globex, 1 + i * 1.5, "eligible", error_type=error_type, message=message)
    for i in range(3):
        # The CRM answered 404 for these: a config problem, not the outage; replay must skip them.
        b.add(
            globex,
            5 + i * 17,
            "config_error",
            error_type="MissingRelatedAccount",
            message=f"CRM has no record 'deal-gone-{i}'",
        )
    scenario = {
        "vendors": vendors,
        "ramps": [acme, globex],
        "executions": sorted(b.executions, key=lambda e: e["created_at"]),
        "users": [{"email": "oncall@example.com", "role": "ONRAMP_ADMIN"}],
        "api_keys": [],
    }
    expected = _expectations(scenario, b, since=OUTAGE_SINCE, error_pattern=None)
    expected["incident"] = "crm-outage"
    return scenario, expected


def _row(b: Builder, execution_uuid: str) -> dict:
    return next(e for e in b.executions if e["uuid"] == execution_uuid)


def _expectations(scenario: dict, b: Builder, *, since: str, error_pattern: str | None) -> dict:
    in_scope = [e for e in b.executions if e["status_code"] == "ERROR" and e["created_at"] >= since]
    by_ramp: dict[str, int] = defaultdict(int)
    vendor_of = {r["uuid"]: r["vendor_id"] for r in scenario["ramps"]}
    for e in in_scope:
        by_ramp[e["ramp_uuid"]] += 1
    reasons = Counter(b.fate[e["uuid"]] for e in in_scope)
    eligible = reasons.pop("eligible", 0)
    eligible_rows = [e for e in in_scope if b.fate[e["uuid"]] == "eligible"]
    current = {r["uuid"]: r["current_version"] for r in scenario["ramps"]}
    with_webhook = {v["id"] for v in scenario["vendors"] if (v.get("integration") or {}).get("webhook_url")}
    return {
        "since": since,
        "error_pattern": error_pattern,
        "blast_radius": sorted(
            [{"vendor_id": vendor_of[r], "ramp_uuid": r, "count": n} for r, n in by_ramp.items()],
            key=lambda x: (x["vendor_id"], x["ramp_uuid"]),
        ),
        "matched": len(in_scope),
        "eligible": eligible,
        "skipped_by_reason": dict(sorted(reasons.items())),
        "drift": sum(1 for e in eligible_rows if e["version"] != current[e["ramp_uuid"]]),
        "fetching_replays": sum(
            1
            for e in eligible_rows
            if any(
                s["type"] == "fetch_crm_record"
                for r in scenario["ramps"]
                if r["uuid"] == e["ramp_uuid"]
                for v in r["versions"]
                if v["version"] == e["version"]
                for s in v["steps"]
            )
        ),
        "webhooks_per_full_replay": sum(1 for e in eligible_rows if vendor_of[e["ramp_uuid"]] in with_webhook),
        "emails_per_full_replay": sum(1 for e in eligible_rows if (e["payload"].get("owner") or {}).get("email")),
        "summary": _summary(scenario, in_scope, b, error_pattern),
        "projects_before": sum(1 for e in b.executions if e["has_project"]),
        "projects_in_window_before": sum(1 for e in b.executions if e["has_project"] and e["created_at"] >= since),
        "executions": len(b.executions),
    }


def _summary(scenario: dict, in_scope: list[dict], b: Builder, error_pattern: str | None) -> dict:
    """What GET /api/ramps/executions/error-summary answers for the window (default grouping:
    vendor, ramp, error type). Its `eligible` is a window-only retry-batch's: no error pattern,
    so rows skipped only for not matching the incident's pattern count as eligible there."""
    vendor_of = {r["uuid"]: r["vendor_id"] for r in scenario["ramps"]}
    eligible_fates = {"eligible", "error_pattern_mismatch"} if error_pattern else {"eligible"}
    groups: dict[tuple, dict] = {}
    for e in in_scope:
        key = (vendor_of[e["ramp_uuid"]], e["ramp_uuid"], e["error_type"])
        group = groups.setdefault(
            key, {"vendor_id": key[0], "ramp_uuid": key[1], "error_type": key[2], "count": 0, "eligible": 0}
        )
        group["count"] += 1
        group["eligible"] += b.fate[e["uuid"]] in eligible_fates
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["vendor_id"], g["ramp_uuid"], g["error_type"]))
    return {"total": len(in_scope), "eligible": sum(g["eligible"] for g in ordered), "groups": ordered}


def write(out: Path, name: str, scenario: dict, expected: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(scenario, indent=1) + "\n")
    (out / f"{name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    parser.add_argument(
        "--crm-url",
        default=DEFAULT_CRM_URL,
        help=f"base URL of the mock CRM the integrations point at (default {DEFAULT_CRM_URL})",
    )
    args = parser.parse_args(argv)
    crm_url = args.crm_url.rstrip("/")
    for name, build in (("regression-incident", regression), ("crm-outage", outage)):
        scenario, expected = build(crm_url)
        write(args.out, name, scenario, expected)
        print(
            f"wrote {args.out / (name + '.json')}: {len(scenario['executions'])} executions, "
            f"{expected['matched']} in scope, {expected['eligible']} eligible"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
