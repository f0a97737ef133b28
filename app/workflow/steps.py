"""The four step types a ramp version can run.

Each step reads what it needs from the `StepContext`, raises a `WorkflowError` subclass for a
classified failure, and records what it made in `ctx.state` for the steps after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from sqlalchemy import bindparam, func, insert, literal, select
from sqlalchemy.orm import Session

from app.models import Account, CrmIntegration, ObjectEntityId, Project, Ramp, RampExecution
from app.models.outbox import EVENT_PROJECT_CREATED
from app.notifications.email import address_problem
from app.notifications.outbox import enqueue_many
from app.workflow.errors import (
    IntegrationConnectionError,
    InvalidAccessTokenError,
    InvalidConfigurationError,
    MissingRelatedAccount,
    MissingTriggerField,
    ModuleTimeoutError,
    RateLimitError,
)

# Built once: constructing a statement costs more Python time than running it, and these run on
# every replay and trigger.
_ACCOUNT_LOCK = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("lock_key"), 0)))
_FIND_ACCOUNT = (
    select(Account.id, Account.uuid, Account.name)
    .join(ObjectEntityId, ObjectEntityId.account_id == Account.id)
    .where(
        ObjectEntityId.vendor_id == bindparam("vendor_id"),
        ObjectEntityId.object_type == "company",
        ObjectEntityId.external_id == bindparam("external_id"),
        ObjectEntityId.archived_at.is_(None),
    )
)


# A new account and its live link in one statement (one round trip): the link is inserted from
# the account row the first insert returns.
def _insert_account_and_link():
    account = (
        insert(Account)
        .values(vendor_id=bindparam("vendor_id"), name=bindparam("name"))
        .returning(Account.id, Account.uuid, Account.name)
        .cte("new_account")
    )
    link = (
        insert(ObjectEntityId)
        .from_select(
            ["vendor_id", "account_id", "object_type", "external_id", "created_at"],
            select(bindparam("vendor_id"), account.c.id, literal("company"), bindparam("external_id"), func.now()),
        )
        .cte("new_link")
    )
    return select(account.c.id, account.c.uuid, account.c.name).add_cte(link)


_INSERT_ACCOUNT_AND_LINK = _insert_account_and_link()
_INSERT_PROJECT = insert(Project).returning(Project.id, Project.uuid, Project.name, Project.account_id)


@dataclass
class StepContext:
    session: Session
    execution: RampExecution
    ramp: Ramp
    integration: CrmIntegration | None
    payload: dict
    now: datetime
    suppress_notifications: bool = False
    http_timeout: float = 5.0
    state: dict[str, Any] = field(default_factory=dict)
    notifications: list = field(default_factory=list)


def _required(payload: dict, dotted: str) -> Any:
    value: Any = payload
    for part in dotted.split("."):
        if not isinstance(value, dict) or value.get(part) in (None, ""):
            raise MissingTriggerField(f"trigger payload has no '{dotted}'")
        value = value[part]
    return value


def _connected_integration(ctx: StepContext) -> CrmIntegration:
    integration = ctx.integration
    if integration is None or not integration.api_base_url:
        raise InvalidConfigurationError("vendor has no CRM integration with an API base URL")
    if not integration.user_configured:
        raise InvalidConfigurationError("CRM integration is not configured")
    if integration.token_revoked:
        raise InvalidAccessTokenError("CRM access token was revoked")
    if integration.token_expires_at is not None and integration.token_expires_at <= ctx.now:
        raise InvalidAccessTokenError("CRM access token has expired")
    return integration


def fetch_crm_record(ctx: StepContext) -> str:
    integration = _connected_integration(ctx)
    key = ctx.execution.trigger_key
    if not key:
        raise MissingTriggerField("execution has no trigger_key to fetch")
    url = f"{integration.api_base_url.rstrip('/')}/objects/{requests.utils.quote(key, safe='')}"
    try:
        response = requests.get(url, timeout=ctx.http_timeout)
    except requests.Timeout as exc:
        raise ModuleTimeoutError(f"CRM did not answer within {ctx.http_timeout:g}s") from exc
    except requests.RequestException as exc:
        raise IntegrationConnectionError(f"cannot reach CRM: {type(exc).__name__}") from exc
    if response.status_code == 429:
        raise RateLimitError("CRM rate limit hit (429)")
    if response.status_code in (401, 403):
        raise InvalidAccessTokenError(f"CRM refused our token ({response.status_code})")
    if response.status_code >= 500:
        raise IntegrationConnectionError(f"CRM answered {response.status_code}")
    if response.status_code == 404:
        raise MissingRelatedAccount(f"CRM has no record '{key}'")
    if response.status_code >= 400:
        raise IntegrationConnectionError(f"CRM answered {response.status_code}")
    try:
        ctx.state["crm_record"] = response.json()
    except ValueError as exc:
        raise IntegrationConnectionError("CRM answered with a body that is not JSON") from exc
    return f"fetched CRM record {key}"


def find_or_create_account(ctx: StepContext) -> str:
    external_id = str(_required(ctx.payload, "company.id"))
    name = str(_required(ctx.payload, "company.name"))
    vendor_id = ctx.execution.vendor_id
    # Core statements, not ORM objects: the steps only need ids, uuids and names back, and this
    # runs once per replay, where the unit of work's bookkeeping is most of the cost.
    connection = ctx.session.connection()
    # Serialise concurrent creators of the same CRM object (a trigger and a replay, two replays),
    # so exactly one account and one live link are made.
    connection.execute(_ACCOUNT_LOCK, {"lock_key": f"account:{vendor_id}:{external_id}"})
    account = connection.execute(_FIND_ACCOUNT, {"vendor_id": vendor_id, "external_id": external_id}).first()
    if account is not None:
        ctx.state["account"] = account
        return f"reused account {account.uuid} for company {external_id}"
    account = connection.execute(
        _INSERT_ACCOUNT_AND_LINK, {"vendor_id": vendor_id, "name": name, "external_id": external_id}
    ).one()
    ctx.state["account"] = account
    return f"created account {account.uuid} for company {external_id}"


def create_project(ctx: StepContext) -> str:
    account = ctx.state.get("account")
    if account is None:
        raise MissingRelatedAccount("create_project needs an account: run find_or_create_account first")
    name = str(_required(ctx.payload, "company.name"))
    # The unique index on execution_id turns a duplicate into this step's error, right here.
    project = (
        ctx.session.connection()
        .execute(
            _INSERT_PROJECT,
            {
                "vendor_id": ctx.execution.vendor_id,
                "account_id": account.id,
                "execution_id": ctx.execution.id,
                "name": name,
            },
        )
        .one()
    )
    ctx.state["project"] = project
    return f"created project {project.uuid}"


def notify(ctx: StepContext) -> str:
    project = ctx.state.get("project")
    account = ctx.state.get("account")
    if project is None:
        raise InvalidConfigurationError("notify needs a project: run create_project first")
    payload = {
        "event": EVENT_PROJECT_CREATED,
        "vendor_id": ctx.execution.vendor_id,
        "ramp_uuid": str(ctx.ramp.uuid),
        "execution_uuid": str(ctx.execution.uuid),
        "trigger_key": ctx.execution.trigger_key,
        "project": {"uuid": str(project.uuid), "name": project.name},
        "account": {"uuid": str(account.uuid), "name": account.name} if account else None,
    }
    common = dict(
        vendor_id=ctx.execution.vendor_id,
        execution_id=ctx.execution.id,
        event=EVENT_PROJECT_CREATED,
        payload=payload,
        suppressed=ctx.suppress_notifications,
    )
    wanted = []
    if ctx.integration is not None and ctx.integration.webhook_url:
        wanted.append(dict(common, channel="webhook", target=ctx.integration.webhook_url))
    owner = ctx.payload.get("owner") if isinstance(ctx.payload.get("owner"), dict) else {}
    refused = None
    if owner.get("email"):
        address = str(owner["email"])
        # An address that can never be sent to is recorded as failed, not queued behind others.
        refused = address_problem(address)
        wanted.append(dict(common, channel="email", target=address, error=refused))
    ctx.notifications.extend(enqueue_many(ctx.session, wanted))
    made = [n["channel"] for n in wanted if not n.get("error")]
    verb = "suppressed" if ctx.suppress_notifications else "queued"
    line = f"{EVENT_PROJECT_CREATED} {verb}: {', '.join(made) or 'no recipients'}"
    if refused:
        line += f"; email not queued: invalid address ({refused.partition(': ')[2]})"
    return line


STEP_HANDLERS: dict[str, Callable[[StepContext], str]] = {
    "fetch_crm_record": fetch_crm_record,
    "find_or_create_account": find_or_create_account,
    "create_project": create_project,
    "notify": notify,
}
