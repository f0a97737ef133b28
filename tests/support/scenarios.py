"""Scenario documents for tests (SPEC section 5), with fresh uuids so tests never collide."""

from __future__ import annotations

import copy
import uuid
from typing import Any

SIGNING_SECRET = "s3cr3t"


def new_uuid() -> str:
    return str(uuid.uuid4())


def integration(base_url: str = "http://127.0.0.1:9", **overrides: Any) -> dict:
    data = {
        "provider": "hubspot",
        "user_configured": True,
        "token_revoked": False,
        "api_base_url": base_url,
        "webhook_url": f"{base_url}/webhooks",
        "signing_secret": SIGNING_SECRET,
    }
    data.update(overrides)
    return data


def vendor(
    vendor_id: int = 1, name: str = "Acme", *, base_url: str = "http://127.0.0.1:9", **integration_overrides: Any
) -> dict:
    return {"id": vendor_id, "name": name, "integration": integration(base_url, **integration_overrides)}


def ramp(vendor_id: int = 1, *, steps: list[str] | None = None, status: str = "active", **overrides: Any) -> dict:
    """A ramp with one published version (default steps unless `steps` names them)."""
    version: dict[str, Any] = {"version": 1}
    if steps is not None:
        version["steps"] = [{"type": s} for s in steps]
    data = {
        "uuid": new_uuid(),
        "vendor_id": vendor_id,
        "name": "Project Create",
        "status": status,
        "current_version": 1,
        "versions": [version],
    }
    data.update(overrides)
    return data


def payload(
    company_id: str | None = "c-1", name: str | None = "Globex", email: str | None = "owner@example.com"
) -> dict:
    data: dict[str, Any] = {"company": {}}
    if company_id is not None:
        data["company"]["id"] = company_id
    if name is not None:
        data["company"]["name"] = name
    if email is not None:
        data["owner"] = {"email": email}
    return data


def execution(
    ramp_uuid: str, *, status: str = "ERROR", created_at: str = "2026-05-11T12:35:00Z", **overrides: Any
) -> dict:
    data: dict[str, Any] = {
        "uuid": new_uuid(),
        "ramp_uuid": ramp_uuid,
        "status_code": status,
        "created_at": created_at,
        "trigger_key": f"deal-{uuid.uuid4().hex[:8]}",
        "payload": payload(),
    }
    if status == "ERROR":
        data["error_type"] = "UnboundLocalError"
        data["error_message"] = "cannot access local variable 'new_task'"
    data.update(overrides)
    return data


def scenario(
    base_url: str = "http://127.0.0.1:9",
    *,
    ramp_steps: list[str] | None = None,
    executions: int = 0,
    **ramp_overrides: Any,
) -> dict:
    """One vendor (id 1) with an integration at `base_url`, one ramp, `executions` ERROR rows."""
    r = ramp(1, steps=ramp_steps, **ramp_overrides)
    return {
        "vendors": [vendor(1, base_url=base_url)],
        "ramps": [r],
        "executions": [execution(r["uuid"]) for _ in range(executions)],
    }


_SPEC_EXAMPLE = {
    "vendors": [
        {
            "id": 1,
            "name": "Acme",
            "integration": {
                "provider": "hubspot",
                "user_configured": True,
                "token_revoked": False,
                "api_base_url": "http://127.0.0.1:9300",
                "webhook_url": "http://127.0.0.1:9300/webhooks",
                "signing_secret": "s3cr3t",
            },
        }
    ],
    "ramps": [
        {
            "uuid": "...",
            "vendor_id": 1,
            "name": "Project Create",
            "status": "active",
            "current_version": 2,
            "versions": [
                {
                    "version": 1,
                    "draft": False,
                    "steps": [{"type": "find_or_create_account"}, {"type": "create_project"}, {"type": "notify"}],
                },
                {
                    "version": 2,
                    "steps": [
                        {"type": "fetch_crm_record"},
                        {"type": "find_or_create_account"},
                        {"type": "create_project"},
                        {"type": "notify"},
                    ],
                },
            ],
        }
    ],
    "executions": [
        {
            "uuid": "...",
            "ramp_uuid": "...",
            "version": 1,
            "status_code": "ERROR",
            "created_at": "2026-05-11T12:35:00Z",
            "trigger_key": "deal-42",
            "payload": {"company": {"id": "c-1", "name": "Globex"}, "owner": {"email": "a@b.c"}},
            "error_type": "UnboundLocalError",
            "error_message": "cannot access local variable 'new_task'",
            "replay_attempts": 0,
            "has_project": False,
        }
    ],
    "users": [{"email": "ops@example.com", "role": "ONRAMP_ADMIN"}],
    "api_keys": [{"name": "runbook-bot", "key": "k-1", "secret": "plain-secret", "role": "ONRAMP_ADMIN"}],
}


def spec_example() -> dict:
    """The SPEC section 5 example verbatim, with its "..." uuids filled in."""
    data = copy.deepcopy(_SPEC_EXAMPLE)
    ramp_uuid = new_uuid()
    data["ramps"][0]["uuid"] = ramp_uuid
    data["executions"][0]["uuid"] = new_uuid()
    data["executions"][0]["ramp_uuid"] = ramp_uuid
    return data
