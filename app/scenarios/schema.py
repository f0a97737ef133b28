"""Marshmallow schemas for scenario files (SPEC section 5) and the checks that need the whole file.

`parse_scenario` turns a JSON document into plain dicts with every default filled in, or raises
`app.errors.ValidationError` whose details map each bad path (`executions[3].created_at`) to its
messages. Unknown keys are rejected at every level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError

from app.errors import ValidationError
from app.models.executions import EXECUTION_STATUSES
from app.models.identity import ROLES
from app.models.ramps import DEFAULT_STEPS, RAMP_STATUSES, STEP_TYPES

_UTC_DATETIME = dict(format="iso", default_timezone=UTC)


def _name(max_length: int) -> validate.Length:
    return validate.Length(min=1, max=max_length)


class IntegrationSchema(Schema):
    provider = fields.String(required=True, validate=_name(50))
    user_configured = fields.Boolean(required=True)
    token_revoked = fields.Boolean(load_default=False)
    token_expires_at = fields.AwareDateTime(load_default=None, allow_none=True, **_UTC_DATETIME)
    # Required keys, but null is allowed: a CRM that takes no API calls or webhooks.
    api_base_url = fields.Url(required=True, allow_none=True, require_tld=False, schemes={"http", "https"})
    webhook_url = fields.Url(required=True, allow_none=True, require_tld=False, schemes={"http", "https"})
    signing_secret = fields.String(required=True, validate=validate.Length(min=1))


class VendorSchema(Schema):
    id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    name = fields.String(required=True, validate=_name(200))
    integration = fields.Nested(IntegrationSchema, required=True, allow_none=True)


class StepSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(STEP_TYPES))


class VersionSchema(Schema):
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    draft = fields.Boolean(load_default=False)
    steps = fields.List(
        fields.Nested(StepSchema),
        load_default=lambda: [dict(step) for step in DEFAULT_STEPS],
        validate=validate.Length(min=1),
    )


class RampSchema(Schema):
    uuid = fields.UUID(required=True)
    vendor_id = fields.Integer(required=True, strict=True)
    name = fields.String(required=True, validate=_name(200))
    status = fields.String(required=True, validate=validate.OneOf(RAMP_STATUSES))
    current_version = fields.Integer(required=True, strict=True)
    versions = fields.List(fields.Nested(VersionSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _versions_are_consistent(self, data: dict, **kwargs) -> None:
        numbers = [v["version"] for v in data["versions"]]
        errors: dict[str, Any] = {}
        seen: set[int] = set()
        for index, number in enumerate(numbers):
            if number in seen:
                errors.setdefault("versions", {})[index] = {"version": [f"Duplicate version {number}."]}
            seen.add(number)
        if data["current_version"] not in seen:
            errors["current_version"] = [f"Must be one of the ramp's versions {sorted(seen)}."]
        if errors:
            raise SchemaError(errors)


class ExecutionSchema(Schema):
    uuid = fields.UUID(required=True)
    ramp_uuid = fields.UUID(required=True)
    version = fields.Integer(load_default=None, allow_none=True, strict=True)
    status_code = fields.String(required=True, validate=validate.OneOf(EXECUTION_STATUSES))
    created_at = fields.AwareDateTime(required=True, **_UTC_DATETIME)
    trigger_key = fields.String(required=True, allow_none=True, validate=_name(255))
    payload = fields.Dict(keys=fields.String(), load_default=dict)
    error_type = fields.String(load_default=None, allow_none=True, validate=_name(200))
    error_message = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))
    replay_attempts = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    has_project = fields.Boolean(load_default=False)

    @validates_schema
    def _error_keys(self, data: dict, **kwargs) -> None:
        errors = {}
        if data["status_code"] == "ERROR":
            for key in ("error_type", "error_message"):
                if not data.get(key):
                    errors[key] = ["Required when status_code is ERROR."]
        elif bool(data.get("error_type")) != bool(data.get("error_message")):
            # A past failure of a non-ERROR row is recorded only with both halves.
            missing = "error_message" if data.get("error_type") else "error_type"
            errors[missing] = ["Required together with error_type and error_message."]
        if errors:
            raise SchemaError(errors)


class UserSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class ApiKeySchema(Schema):
    name = fields.String(required=True, validate=_name(200))
    # Optional: generated (and reported once) when left out.
    key = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))
    secret = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class ScenarioSchema(Schema):
    vendors = fields.List(fields.Nested(VendorSchema), required=True)
    ramps = fields.List(fields.Nested(RampSchema), required=True)
    executions = fields.List(fields.Nested(ExecutionSchema), required=True)
    users = fields.List(fields.Nested(UserSchema), load_default=list)
    api_keys = fields.List(fields.Nested(ApiKeySchema), load_default=list)


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"executions[3].created_at": ["Not a valid datetime."]}."""
    out: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, int):
                    child = f"{path}[{key}]"
                elif key == "_schema":
                    child = path
                else:
                    child = f"{path}.{key}" if path else str(key)
                walk(value, child)
        elif isinstance(node, (list, tuple)):
            for item in node:
                if isinstance(item, (dict, list, tuple)):
                    walk(item, path)
                else:
                    out.setdefault(path or "(root)", []).append(str(item))
        else:
            out.setdefault(path or "(root)", []).append(str(node))

    walk(messages, prefix)
    return out


def error_lines(details: dict[str, list[str]]) -> list[str]:
    return [f"{path}: {message}" for path, messages in details.items() for message in messages]


def scenario_error(details: dict[str, list[str]]) -> ValidationError:
    lines = error_lines(details)
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return ValidationError(f"Scenario is not valid: {lines[0]}{more}", details=details)


@dataclass
class ExistingRows:
    """What the database already holds for the keys a file mentions (see loader.existing_rows)."""

    vendor_ids: set[int] = field(default_factory=set)
    # ramp uuid -> set of version numbers
    ramp_versions: dict = field(default_factory=dict)
    execution_uuids: set = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    api_key_names: set[str] = field(default_factory=set)
    # plain key values (from the file) whose digest is already stored
    api_key_values: set[str] = field(default_factory=set)


def check_references(data: dict, existing: ExistingRows | None = None) -> dict[str, list[str]]:
    """Checks across sections (and against rows already loaded): duplicates, dangling references."""
    existing = existing or ExistingRows()
    errors: dict[str, list[str]] = {}

    def add(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    vendor_ids: set[int] = set()
    for i, vendor in enumerate(data["vendors"]):
        if vendor["id"] in vendor_ids:
            add(f"vendors[{i}].id", f"Duplicate vendor id {vendor['id']}.")
        elif vendor["id"] in existing.vendor_ids:
            add(f"vendors[{i}].id", f"Vendor {vendor['id']} already exists in the database.")
        vendor_ids.add(vendor["id"])

    ramp_versions: dict = {}
    for i, ramp in enumerate(data["ramps"]):
        if ramp["uuid"] in ramp_versions:
            add(f"ramps[{i}].uuid", f"Duplicate ramp uuid {ramp['uuid']}.")
        elif ramp["uuid"] in existing.ramp_versions:
            add(f"ramps[{i}].uuid", f"Ramp {ramp['uuid']} already exists in the database.")
        if ramp["vendor_id"] not in vendor_ids and ramp["vendor_id"] not in existing.vendor_ids:
            add(f"ramps[{i}].vendor_id", f"Unknown vendor id {ramp['vendor_id']}.")
        ramp_versions.setdefault(ramp["uuid"], {v["version"] for v in ramp["versions"]})

    execution_uuids: set = set()
    for i, execution in enumerate(data["executions"]):
        if execution["uuid"] in execution_uuids:
            add(f"executions[{i}].uuid", f"Duplicate execution uuid {execution['uuid']}.")
        elif execution["uuid"] in existing.execution_uuids:
            add(f"executions[{i}].uuid", f"Execution {execution['uuid']} already exists in the database.")
        execution_uuids.add(execution["uuid"])
        versions = ramp_versions.get(execution["ramp_uuid"], existing.ramp_versions.get(execution["ramp_uuid"]))
        if versions is None:
            add(f"executions[{i}].ramp_uuid", f"Unknown ramp uuid {execution['ramp_uuid']}.")
        elif execution["version"] is not None and execution["version"] not in versions:
            add(f"executions[{i}].version", f"The ramp has no version {execution['version']}.")

    emails: set[str] = set()
    for i, user in enumerate(data["users"]):
        email = user["email"].lower()
        if email in emails:
            add(f"users[{i}].email", f"Duplicate email {email}.")
        elif email in existing.emails:
            add(f"users[{i}].email", f"User {email} already exists in the database.")
        emails.add(email)

    names: set[str] = set()
    keys: set[str] = set()
    for i, api_key in enumerate(data["api_keys"]):
        if api_key["name"] in names:
            add(f"api_keys[{i}].name", f"Duplicate api key name {api_key['name']}.")
        elif api_key["name"] in existing.api_key_names:
            add(f"api_keys[{i}].name", f"API key {api_key['name']} already exists in the database.")
        names.add(api_key["name"])
        if api_key["key"] is not None:
            if api_key["key"] in keys or api_key["key"] in existing.api_key_values:
                add(f"api_keys[{i}].key", "This key value is already in use.")
            keys.add(api_key["key"])
    return errors


def validate_document(raw: Any) -> dict:
    """Schema validation only: the decoded document with defaults filled in."""
    if not isinstance(raw, dict):
        raise scenario_error({"(root)": ["A scenario must be a JSON object."]})
    try:
        return ScenarioSchema().load(raw)
    except SchemaError as exc:
        raise scenario_error(flatten_messages(exc.messages)) from None


def parse_scenario(raw: Any, existing: ExistingRows | None = None) -> dict:
    """Validate a decoded scenario document; returns it with defaults filled in."""
    data = validate_document(raw)
    errors = check_references(data, existing)
    if errors:
        raise scenario_error(errors)
    return data
