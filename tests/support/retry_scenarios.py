"""Scenario builders and HTTP helpers for the retry-batch tests.

Times are minutes after INCIDENT_START (2026-05-11T12:30:00Z), so tests read as "row at +5".
Every execution gets its own company id, so replays never share an account.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth.access import Actor
from app.auth.api_keys import create_api_key
from app.models.identity import ROLE_ADMIN
from tests.support.scenarios import integration as base_integration
from tests.support.scenarios import new_uuid

INCIDENT_START = datetime(2026, 5, 11, 12, 30, tzinfo=UTC)
URL = "/api/ramps/executions/retry-batch"
SIGNING_SECRET = "retry-test-signing-secret"
DEAD_URL = "http://127.0.0.1:9"  # nothing listens on the discard port: a fast connection error
ADMIN_ACTOR = Actor(kind="api_key", name="retry-tests", role=ROLE_ADMIN)


def at(minutes: float) -> datetime:
    return INCIDENT_START + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat().replace("+00:00", "Z")


def integration(base_url: str = DEAD_URL, **overrides: Any) -> dict:
    return base_integration(base_url, **{"signing_secret": SIGNING_SECRET, **overrides})


def vendor(vendor_id: int = 1, *, integration_data: dict | None | str = "default", base_url: str = DEAD_URL) -> dict:
    if integration_data == "default":
        integration_data = integration(base_url)
    return {"id": vendor_id, "name": f"Vendor {vendor_id}", "integration": integration_data}


def ramp(
    vendor_id: int = 1,
    *,
    status: str = "active",
    steps: list[str] | None = None,
    versions: list[dict] | None = None,
    current_version: int = 1,
) -> dict:
    if versions is None:
        version: dict[str, Any] = {"version": 1}
        if steps is not None:
            version["steps"] = [{"type": s} for s in steps]
        versions = [version]
    return {
        "uuid": new_uuid(),
        "vendor_id": vendor_id,
        "name": "Project Create",
        "status": status,
        "current_version": current_version,
        "versions": versions,
    }


_counter = iter(range(1, 10**9))


def execution(
    ramp_data: dict,
    *,
    minutes: float = 5,
    status: str = "ERROR",
    error_type: str = "UnboundLocalError",
    error_message: str | None = "cannot access local variable 'new_task'",
    payload: dict | None = None,
    email: str | None = None,
    **overrides: Any,
) -> dict:
    n = next(_counter)
    if payload is None:
        payload = {"company": {"id": f"c-{n}", "name": f"Company {n}"}}
        if email:
            payload["owner"] = {"email": email}
    data: dict[str, Any] = {
        "uuid": new_uuid(),
        "ramp_uuid": ramp_data["uuid"],
        "status_code": status,
        "created_at": iso(minutes),
        "trigger_key": f"deal-{n}",
        "payload": payload,
    }
    if status == "ERROR":
        data["error_type"] = error_type
        data["error_message"] = error_message
    data.update(overrides)
    return data


def world(vendors: list[dict], ramps: list[dict], executions: list[dict]) -> dict:
    return {"vendors": vendors, "ramps": ramps, "executions": executions}


def backlog(n: int, *, base_url: str = DEAD_URL, steps: list[str] | None = None, spacing: float = 0.01) -> dict:
    """One vendor, one active ramp, `n` replayable ERROR rows spaced `spacing` minutes apart."""
    r = ramp(1, steps=steps)
    rows = [execution(r, minutes=1 + i * spacing) for i in range(n)]
    return world([vendor(1, base_url=base_url)], [r], rows)


# ---- HTTP -------------------------------------------------------------------------------------


def api_key_headers(session_factory, *, role: str = ROLE_ADMIN, name: str | None = None) -> dict[str, str]:
    with session_factory() as session, session.begin():
        _, key, secret = create_api_key(session, name=name or f"retry-{role}-{uuid.uuid4().hex[:6]}", role=role)
    return {"Authorization": key, "or-internal-api-auth-secret": secret}


def post(client, headers: dict, body: Any):
    return client.post(URL, json=body, headers=headers)


def window(**extra: Any) -> dict:
    """The usual request: the incident window from +0 to +1 day."""
    body: dict[str, Any] = {"since": iso(0), "until": iso(24 * 60)}
    body.update(extra)
    return body


def add_failures_like(session_factory, template_uuid: str, uuids: list[str], *, seconds: float = -10) -> None:
    """New ERROR executions copied from an existing one (same ramp and error), `seconds` after it
    (negative: older), each with its own trigger key: failures that arrive after a preview."""
    from sqlalchemy import text

    with session_factory() as session, session.begin():
        for n, new in enumerate(uuids):
            session.execute(
                text(
                    "INSERT INTO or_ramp_executions (uuid, vendor_id, ramp_id, ramp_version, status_code,"
                    " trigger_key, trigger_payload, replay_attempts, last_error_type, last_error_category,"
                    " last_error_message, created_at, updated_at)"
                    " SELECT CAST(:new AS uuid), vendor_id, ramp_id, ramp_version, 'ERROR', 'late-' || :new,"
                    " trigger_payload, 0, last_error_type, last_error_category, last_error_message,"
                    " created_at + make_interval(secs => :offset), now() FROM or_ramp_executions WHERE uuid = :t"
                ),
                {"new": new, "offset": seconds + n * 0.001, "t": template_uuid},
            )
