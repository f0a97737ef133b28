"""Loading a validated scenario into the database, inside the caller's transaction.

Everything is validated (schema, cross-references, clashes with rows already stored) before the
first write, and the caller's `with session.begin():` makes the load all-or-nothing. Rows go in
with a handful of batched INSERTs (execution ids are reserved up front so their log entries can be
built before the one flush), which keeps a 5,000-execution scenario to a few seconds.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, text, tuple_
from sqlalchemy.orm import Session

from app.auth.api_keys import create_api_key, key_digest
from app.errors import ValidationError
from app.models import (
    Account,
    ApiKey,
    CrmIntegration,
    ObjectEntityId,
    Project,
    Ramp,
    RampExecution,
    RampVersion,
    User,
    Vendor,
)
from app.scenarios.schema import ExistingRows, check_references, scenario_error, validate_document
from app.workflow.errors import classify
from app.workflow.log import append_log

_TERMINAL = ("SUCCESS", "ERROR", "DISMISSED")


@dataclass
class LoadReport:
    vendors: int = 0
    integrations: int = 0
    ramps: int = 0
    ramp_versions: int = 0
    executions: int = 0
    execution_statuses: dict[str, int] = field(default_factory=dict)
    error_logs: int = 0
    accounts: int = 0
    projects: int = 0
    users: int = 0
    api_keys: int = 0
    ramp_uuids: list[uuid.UUID] = field(default_factory=list)
    execution_uuids: list[uuid.UUID] = field(default_factory=list)
    # (name, key, secret) for API keys whose key or secret the file left out: shown once, never stored.
    generated_credentials: list[tuple[str, str, str]] = field(default_factory=list)

    def summary_lines(self, max_uuids: int = 20) -> list[str]:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.execution_statuses.items()))
        lines = [
            f"vendors: {self.vendors} (integrations: {self.integrations})",
            f"ramps: {self.ramps} (versions: {self.ramp_versions})",
            f"executions: {self.executions}" + (f" ({statuses})" if statuses else ""),
            f"error log entries: {self.error_logs}",
            f"accounts: {self.accounts}, projects: {self.projects}",
            f"users: {self.users}, api keys: {self.api_keys}",
        ]
        lines += [f"ramp {u}" for u in self.ramp_uuids]
        lines += [f"execution {u}" for u in self.execution_uuids[:max_uuids]]
        if len(self.execution_uuids) > max_uuids:
            lines.append(f"... and {len(self.execution_uuids) - max_uuids} more executions")
        return lines

    def credential_lines(self) -> list[str]:
        return [f"api key {name}: key={key} secret={secret}" for name, key, secret in self.generated_credentials]


@dataclass
class _RampRef:
    id: int
    vendor_id: int
    current_version: int


def load_scenario_file(session: Session, path: str | Path) -> LoadReport:
    """Read, validate and load a scenario file (JSON errors name the file, line and column)."""
    path = Path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"Cannot read scenario file {path}: {exc}", details={"file": str(path)}) from None
    try:
        raw = json.loads(raw_text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{path}: line {exc.lineno} column {exc.colno}: {exc.msg}",
            details={f"{path}:{exc.lineno}:{exc.colno}": [exc.msg]},
        ) from None
    return load_scenario(session, raw)


def load_scenario(session: Session, data: dict) -> LoadReport:
    """Validate `data` and insert it; the caller owns the (single) transaction."""
    if not session.in_transaction():
        raise RuntimeError("load_scenario runs inside the caller's transaction: use `with session.begin():`")
    parsed = validate_document(data)
    errors = check_references(parsed, existing_rows(session, parsed))
    if errors:
        raise scenario_error(errors)

    report = LoadReport()
    _insert_vendors(session, parsed["vendors"], report)
    ramps = _insert_ramps(session, parsed["ramps"], report)
    _insert_executions(session, parsed["executions"], ramps, report)
    _insert_people(session, parsed["users"], parsed["api_keys"], report)
    session.flush()
    return report


def existing_rows(session: Session, data: dict) -> ExistingRows:
    """Rows already stored under the ids, uuids, emails and names the file mentions."""
    vendor_ids = {v["id"] for v in data["vendors"]} | {r["vendor_id"] for r in data["ramps"]}
    ramp_uuids = {r["uuid"] for r in data["ramps"]} | {e["ramp_uuid"] for e in data["executions"]}
    execution_uuids = [e["uuid"] for e in data["executions"]]
    emails = {u["email"].lower() for u in data["users"]}
    names = {k["name"] for k in data["api_keys"]}
    digests = {key_digest(k["key"]): k["key"] for k in data["api_keys"] if k["key"]}

    existing = ExistingRows()
    if vendor_ids:
        existing.vendor_ids = set(session.scalars(select(Vendor.id).where(Vendor.id.in_(vendor_ids))))
    if ramp_uuids:
        rows = session.execute(
            select(Ramp.uuid, RampVersion.version)
            .join(RampVersion, RampVersion.ramp_id == Ramp.id, isouter=True)
            .where(Ramp.uuid.in_(ramp_uuids))
        )
        for ramp_uuid, version in rows:
            existing.ramp_versions.setdefault(ramp_uuid, set())
            if version is not None:
                existing.ramp_versions[ramp_uuid].add(version)
    if execution_uuids:
        existing.execution_uuids = set(
            session.scalars(select(RampExecution.uuid).where(RampExecution.uuid.in_(execution_uuids)))
        )
    if emails:
        existing.emails = set(session.scalars(select(User.email).where(User.email.in_(emails))))
    if names:
        existing.api_key_names = set(session.scalars(select(ApiKey.name).where(ApiKey.name.in_(names))))
    if digests:
        taken = session.scalars(select(ApiKey.key_hash).where(ApiKey.key_hash.in_(digests)))
        existing.api_key_values = {digests[d] for d in taken}
    return existing


def _insert_vendors(session: Session, vendors: list[dict], report: LoadReport) -> None:
    if not vendors:
        return
    for item in vendors:
        session.add(Vendor(id=item["id"], name=item["name"]))
        integration = item["integration"]
        if integration is not None:
            session.add(CrmIntegration(vendor_id=item["id"], **integration))
            report.integrations += 1
    session.flush()
    # Explicit ids bypass the sequence; move it past them so later inserts don't collide.
    session.execute(text("SELECT setval(pg_get_serial_sequence('or_vendors', 'id'), (SELECT max(id) FROM or_vendors))"))
    report.vendors = len(vendors)


def _insert_ramps(session: Session, ramps: list[dict], report: LoadReport) -> dict[uuid.UUID, _RampRef]:
    made = []
    for item in ramps:
        ramp = Ramp(
            uuid=item["uuid"],
            vendor_id=item["vendor_id"],
            name=item["name"],
            status=item["status"],
            current_version=item["current_version"],
        )
        ramp.versions = [
            RampVersion(version=v["version"], draft=v["draft"], definition={"steps": v["steps"]})
            for v in item["versions"]
        ]
        made.append(ramp)
        report.ramp_versions += len(ramp.versions)
    session.add_all(made)
    session.flush()
    report.ramps = len(made)
    report.ramp_uuids = [r.uuid for r in made]
    return {r.uuid: _RampRef(r.id, r.vendor_id, r.current_version) for r in made}


def _referenced_stored_ramps(session: Session, executions: list[dict], known) -> dict[uuid.UUID, _RampRef]:
    wanted = {e["ramp_uuid"] for e in executions} - set(known)
    if not wanted:
        return {}
    rows = session.execute(
        select(Ramp.uuid, Ramp.id, Ramp.vendor_id, Ramp.current_version).where(Ramp.uuid.in_(wanted))
    )
    return {row.uuid: _RampRef(row.id, row.vendor_id, row.current_version) for row in rows}


def _reserve_ids(session: Session, table: str, count: int) -> list[int]:
    # One round trip for all ids, so dependent rows can be built before the batched flush.
    return list(
        session.scalars(
            text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        )
    )


def _insert_executions(
    session: Session, executions: list[dict], ramps: dict[uuid.UUID, _RampRef], report: LoadReport
) -> None:
    if not executions:
        return
    ramps = {**ramps, **_referenced_stored_ramps(session, executions, ramps)}
    ids = _reserve_ids(session, "or_ramp_executions", len(executions))
    rows: list[RampExecution] = []
    with_project: list[tuple[RampExecution, dict]] = []
    for item, execution_id in zip(executions, ids, strict=True):
        ramp = ramps[item["ramp_uuid"]]
        created_at: datetime = item["created_at"]
        execution = RampExecution(
            id=execution_id,
            uuid=item["uuid"],
            vendor_id=ramp.vendor_id,
            ramp_id=ramp.id,
            ramp_version=item["version"] or ramp.current_version,
            status_code=item["status_code"],
            trigger_key=item["trigger_key"],
            trigger_payload=item["payload"],
            replay_attempts=item["replay_attempts"],
            created_at=created_at,
            updated_at=created_at,
            finished_at=created_at if item["status_code"] in _TERMINAL else None,
        )
        rows.append(execution)
        if item["error_type"] and item["error_message"]:
            entry = append_log(
                session,
                execution,
                level="ERROR",
                message=item["error_message"],
                error_type=item["error_type"],
                error_category=classify(item["error_type"]),
            )
            entry.created_at = created_at
            report.error_logs += 1
        if item["has_project"]:
            with_project.append((execution, item["payload"]))
    session.add_all(rows)
    session.flush()
    report.executions = len(rows)
    report.execution_statuses = dict(Counter(r.status_code for r in rows))
    report.execution_uuids = [r.uuid for r in rows]
    if with_project:
        _insert_projects(session, with_project, report)


def _company(payload: dict) -> tuple[str | None, str | None]:
    company = payload.get("company")
    if not isinstance(company, dict):
        return None, None
    external_id = company.get("id")
    name = company.get("name")
    return (
        str(external_id) if external_id not in (None, "") else None,
        str(name) if name not in (None, "") else None,
    )


def _insert_projects(session: Session, items: list[tuple[RampExecution, dict]], report: LoadReport) -> None:
    """`has_project: true`: the account (reusing a live link) and the project a past run made."""
    pairs = {(e.vendor_id, ext) for e, payload in items if (ext := _company(payload)[0]) is not None}
    accounts: dict[tuple[int, str], Account] = {}
    if pairs:
        stored = session.execute(
            select(ObjectEntityId.vendor_id, ObjectEntityId.external_id, Account)
            .join(Account, Account.id == ObjectEntityId.account_id)
            .where(
                ObjectEntityId.object_type == "company",
                ObjectEntityId.archived_at.is_(None),
                tuple_(ObjectEntityId.vendor_id, ObjectEntityId.external_id).in_(list(pairs)),
            )
        )
        accounts = {(vendor_id, ext): account for vendor_id, ext, account in stored}

    new_accounts: dict[tuple[int, str], Account] = {}
    for execution, payload in items:
        external_id, name = _company(payload)
        pair = (execution.vendor_id, external_id)
        if external_id is not None and pair not in accounts and pair not in new_accounts:
            new_accounts[pair] = Account(
                vendor_id=execution.vendor_id, name=name or external_id, created_at=execution.created_at
            )
    session.add_all(new_accounts.values())
    session.flush()
    session.add_all(
        ObjectEntityId(
            vendor_id=vendor_id,
            account_id=account.id,
            object_type="company",
            external_id=external_id,
            created_at=account.created_at,
        )
        for (vendor_id, external_id), account in new_accounts.items()
    )
    accounts.update(new_accounts)

    projects = []
    for execution, payload in items:
        external_id, name = _company(payload)
        account = accounts.get((execution.vendor_id, external_id)) if external_id is not None else None
        projects.append(
            Project(
                vendor_id=execution.vendor_id,
                account_id=account.id if account is not None else None,
                execution_id=execution.id,
                name=name or f"Onboarding {execution.trigger_key or execution.uuid}",
                created_at=execution.created_at,
            )
        )
    session.add_all(projects)
    session.flush()
    report.accounts = len(new_accounts)
    report.projects = len(projects)


def _insert_people(session: Session, users: list[dict], api_keys: list[dict], report: LoadReport) -> None:
    session.add_all(User(email=u["email"].lower(), role=u["role"]) for u in users)
    report.users = len(users)
    for item in api_keys:
        _row, key, secret = create_api_key(
            session, name=item["name"], role=item["role"], key=item["key"], secret=item["secret"]
        )
        if item["key"] is None or item["secret"] is None:
            report.generated_credentials.append((item["name"], key, secret))
    report.api_keys = len(api_keys)
