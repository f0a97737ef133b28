"""Scenario files (SPEC section 5): the example loads, defaults apply, bad input writes nothing."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.auth.api_keys import authenticate_api_key
from app.errors import ValidationError
from app.models import (
    Account,
    ApiKey,
    CrmIntegration,
    ExecutionLog,
    ObjectEntityId,
    Project,
    Ramp,
    RampExecution,
    RampVersion,
    User,
    Vendor,
)
from app.models.ramps import DEFAULT_STEPS
from app.scenarios import load_scenario, load_scenario_file
from tests.support import scenarios as sc

ALL_MODELS = (Vendor, CrmIntegration, Ramp, RampVersion, RampExecution, ExecutionLog, Account, Project, User, ApiKey)


def _counts(session_factory) -> dict[str, int]:
    with session_factory() as s, s.begin():
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in ALL_MODELS}


def _rejected(load, data) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        load(data)
    return caught.value.details


def test_spec_example_loads_every_section(load, session_factory):
    data = sc.spec_example()
    report = load(data)

    assert (report.vendors, report.integrations, report.ramps, report.ramp_versions) == (1, 1, 1, 2)
    assert (report.executions, report.users, report.api_keys) == (1, 1, 1)
    assert report.ramp_uuids == [uuid.UUID(data["ramps"][0]["uuid"])]
    assert report.execution_uuids == [uuid.UUID(data["executions"][0]["uuid"])]
    assert "executions: 1 (ERROR 1)" in report.summary_lines()

    with session_factory() as s, s.begin():
        vendor = s.get(Vendor, 1)
        assert vendor.name == "Acme"
        integration = s.scalar(select(CrmIntegration).where(CrmIntegration.vendor_id == 1))
        assert integration.api_base_url == "http://127.0.0.1:9300"
        assert integration.signing_secret == "s3cr3t" and integration.user_configured
        ramp = s.scalar(select(Ramp).where(Ramp.uuid == uuid.UUID(data["ramps"][0]["uuid"])))
        assert (ramp.status, ramp.current_version) == ("active", 2)
        versions = {v.version: v for v in s.scalars(select(RampVersion).where(RampVersion.ramp_id == ramp.id))}
        assert [step["type"] for step in versions[2].steps] == [
            "fetch_crm_record",
            "find_or_create_account",
            "create_project",
            "notify",
        ]
        assert versions[1].draft is False

        execution = s.scalar(select(RampExecution))
        assert execution.uuid == uuid.UUID(data["executions"][0]["uuid"])
        assert (execution.vendor_id, execution.ramp_id, execution.ramp_version) == (1, ramp.id, 1)
        assert execution.created_at == datetime(2026, 5, 11, 12, 35, tzinfo=UTC)
        assert execution.status_code == "ERROR" and execution.trigger_key == "deal-42"
        assert execution.trigger_payload["company"] == {"id": "c-1", "name": "Globex"}
        assert (execution.last_error_type, execution.last_error_category) == ("UnboundLocalError", "runtime")
        logs = list(s.scalars(select(ExecutionLog).where(ExecutionLog.execution_id == execution.id)))
        assert [(entry.level, entry.error_type, entry.message) for entry in logs] == [
            ("ERROR", "UnboundLocalError", "cannot access local variable 'new_task'")
        ]
        assert s.scalar(select(func.count()).select_from(Project)) == 0

        assert s.scalar(select(User.role).where(User.email == "ops@example.com")) == "ONRAMP_ADMIN"
        api_key = s.scalar(select(ApiKey))
        # Stored hashed, yet usable with the plain values from the file.
        assert api_key.key_hash == hashlib.sha256(b"k-1").hexdigest()
        assert "plain-secret" not in api_key.secret_hash
        assert authenticate_api_key(s, "k-1", "plain-secret").name == "runbook-bot"
        assert authenticate_api_key(s, "k-1", "wrong") is None


def test_optional_keys_take_their_defaults(load, session_factory):
    r = sc.ramp(1)
    r["versions"] = [{"version": 1}, {"version": 3, "draft": True}]
    r["current_version"] = 1
    data = {
        "vendors": [{"id": 7, "name": "NoCrm", "integration": None}, sc.vendor(1)],
        "ramps": [r],
        "executions": [
            {
                "uuid": sc.new_uuid(),
                "ramp_uuid": r["uuid"],
                "status_code": "PENDING",
                "created_at": "2026-05-11T12:00:00",
                "trigger_key": "deal-1",
            },
        ],
    }
    data["vendors"][1]["integration"].pop("token_revoked")
    report = load(data)
    assert (report.users, report.api_keys, report.integrations) == (0, 0, 1)

    with session_factory() as s, s.begin():
        assert s.scalar(select(CrmIntegration).where(CrmIntegration.vendor_id == 7)) is None
        integration = s.scalar(select(CrmIntegration).where(CrmIntegration.vendor_id == 1))
        assert integration.token_revoked is False and integration.token_expires_at is None
        versions = {v.version: v for v in s.scalars(select(RampVersion))}
        assert versions[1].steps == DEFAULT_STEPS and versions[1].draft is False
        assert versions[3].draft is True
        execution = s.scalar(select(RampExecution))
        assert execution.ramp_version == 1  # the ramp's current version
        assert execution.trigger_payload == {} and execution.replay_attempts == 0
        # Naive times are UTC.
        assert execution.created_at == datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
        assert execution.last_error_type is None
        assert s.scalar(select(func.count()).select_from(ExecutionLog)) == 0


@pytest.mark.parametrize(
    "error_type, category",
    [("MissingTriggerField", "config"), ("RateLimitError", "integration"), ("KeyError", "runtime")],
)
def test_error_type_decides_the_category(load, session_factory, error_type, category):
    data = sc.scenario(executions=1)
    data["executions"][0].update(error_type=error_type, error_message="boom", replay_attempts=2)
    load(data)
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        assert (execution.last_error_type, execution.last_error_category) == (error_type, category)
        assert execution.replay_attempts == 2
        entry = s.scalar(select(ExecutionLog))
        assert (entry.error_category, entry.attempt) == (category, 2)


def test_has_project_links_a_project_and_shares_the_account(load, session_factory):
    data = sc.scenario(executions=3)
    for item in data["executions"]:
        item["has_project"] = True
    data["executions"][2]["payload"] = {"owner": {"email": "x@example.com"}}  # no company
    report = load(data)
    assert (report.accounts, report.projects) == (1, 3)

    with session_factory() as s, s.begin():
        links = list(s.scalars(select(ObjectEntityId)))
        assert [(link.external_id, link.archived_at) for link in links] == [("c-1", None)]
        projects = {p.execution_id: p for p in s.scalars(select(Project))}
        executions = list(s.scalars(select(RampExecution).order_by(RampExecution.id)))
        assert set(projects) == {e.id for e in executions}
        first, second, third = (projects[e.id] for e in executions)
        assert first.account_id == second.account_id == links[0].account_id
        assert first.name == "Globex"
        assert third.account_id is None


def test_has_project_reuses_an_account_loaded_earlier(load, session_factory):
    data = sc.scenario(executions=1)
    data["executions"][0]["has_project"] = True
    load(data)
    # A second file adding executions to the stored ramp.
    more = {"vendors": [], "ramps": [], "executions": [sc.execution(data["ramps"][0]["uuid"], has_project=True)]}
    assert load(more).accounts == 0
    with session_factory() as s, s.begin():
        assert s.scalar(select(func.count()).select_from(Account)) == 1
        assert s.scalar(select(func.count(func.distinct(Project.account_id)))) == 1


def test_vendor_sequence_moves_past_explicit_ids(load, session_factory):
    data = sc.scenario()
    data["vendors"][0]["id"] = 41
    data["ramps"][0]["vendor_id"] = 41
    load(data)
    with session_factory() as s, s.begin():
        vendor = Vendor(name="Created later")
        s.add(vendor)
        s.flush()
        assert vendor.id == 42


def _bad_datetime(data):
    data["executions"][3]["created_at"] = "yesterday"
    return "executions[3].created_at", "Not a valid datetime."


def _unknown_ramp(data):
    data["executions"][3]["ramp_uuid"] = str(uuid.uuid4())
    return "executions[3].ramp_uuid", "Unknown ramp uuid"


def _missing_key(data):
    del data["ramps"][0]["name"]
    return "ramps[0].name", "Missing data for required field."


def _unknown_key(data):
    data["vendors"][0]["integration"]["colour"] = "blue"
    return "vendors[0].integration.colour", "Unknown field."


def _error_without_type(data):
    del data["executions"][4]["error_type"]
    return "executions[4].error_type", "Required when status_code is ERROR."


def _version_not_in_ramp(data):
    data["executions"][0]["version"] = 9
    return "executions[0].version", "The ramp has no version 9."


def _current_version_missing(data):
    data["ramps"][0]["current_version"] = 2
    return "ramps[0].current_version", "Must be one of the ramp's versions"


def _unknown_vendor(data):
    data["ramps"][0]["vendor_id"] = 99
    return "ramps[0].vendor_id", "Unknown vendor id 99."


def _duplicate_execution(data):
    data["executions"][4]["uuid"] = data["executions"][1]["uuid"]
    return "executions[4].uuid", "Duplicate execution uuid"


def _bad_step(data):
    data["ramps"][0]["versions"][0]["steps"] = [{"type": "send_fax"}]
    return "ramps[0].versions[0].steps[0].type", "Must be one of"


def _bad_status(data):
    data["executions"][2]["status_code"] = "FAILED"
    return "executions[2].status_code", "Must be one of"


@pytest.mark.parametrize(
    "breaker",
    [
        _bad_datetime,
        _unknown_ramp,
        _missing_key,
        _unknown_key,
        _error_without_type,
        _version_not_in_ramp,
        _current_version_missing,
        _unknown_vendor,
        _duplicate_execution,
        _bad_step,
        _bad_status,
    ],
)
def test_bad_input_names_the_path_and_writes_nothing(load, session_factory, breaker):
    data = sc.scenario(executions=5)
    data["users"] = [{"email": "ops@example.com", "role": "ONRAMP_ADMIN"}]
    path, message = breaker(data)

    details = _rejected(load, data)

    assert path in details, details
    assert any(message in m for m in details[path]), details[path]
    assert set(_counts(session_factory).values()) == {0}


def test_error_message_reads_path_colon_message(load):
    data = sc.scenario(executions=5)
    data["executions"][3]["created_at"] = "not a time"
    with pytest.raises(ValidationError) as caught:
        load(data)
    assert "executions[3].created_at: Not a valid datetime." in caught.value.message


def test_clash_with_stored_rows_is_a_validation_error(load, session_factory):
    data = sc.spec_example()
    load(data)
    again = sc.spec_example()
    again["executions"][0]["uuid"] = data["executions"][0]["uuid"]
    details = _rejected(load, again)
    assert "vendors[0].id" in details and "executions[0].uuid" in details
    assert "users[0].email" in details and "api_keys[0].name" in details
    counts = _counts(session_factory)
    assert (counts["or_ramps"], counts["or_ramp_executions"]) == (1, 1)


def test_loading_needs_the_callers_transaction(session_factory):
    with session_factory() as s, pytest.raises(RuntimeError):
        load_scenario(s, sc.spec_example())


def test_file_with_broken_json_names_file_and_line(tmp_path, session_factory):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "vendors": [],\n  "ramps": [,]\n}\n')
    with session_factory() as s, pytest.raises(ValidationError) as caught, s.begin():
        load_scenario_file(s, path)
    assert str(path) in caught.value.message and "line 3" in caught.value.message


def test_five_thousand_executions_load_in_a_few_seconds(load, session_factory):
    data = sc.scenario()
    ramp_uuid = data["ramps"][0]["uuid"]
    data["executions"] = [
        sc.execution(ramp_uuid, created_at=f"2026-05-11T12:{i % 60:02d}:00Z", has_project=(i % 10 == 0))
        for i in range(5000)
    ]
    started = time.monotonic()
    report = load(data)
    elapsed = time.monotonic() - started
    assert (report.executions, report.error_logs, report.projects) == (5000, 5000, 500)
    assert elapsed < 10, f"5,000 executions took {elapsed:.1f}s"
    with session_factory() as s, s.begin():
        with_error = select(func.count()).select_from(RampExecution).where(RampExecution.last_error_type.is_not(None))
        assert s.scalar(with_error) == 5000


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_loads_the_spec_example(app, tmp_path, session_factory):
    data = sc.spec_example()
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))

    result = app.test_cli_runner().invoke(args=["scenario", "load", str(path)])

    assert result.exit_code == 0, result.output
    assert "executions: 1 (ERROR 1)" in result.stdout
    assert data["ramps"][0]["uuid"] in result.stdout
    assert "plain-secret" not in result.output  # a secret from the file is never echoed
    assert _counts(session_factory)["or_ramp_executions"] == 1


def test_cli_rejects_a_broken_file_and_writes_nothing(app, tmp_path, session_factory):
    data = sc.scenario(executions=5)
    data["executions"][3]["created_at"] = "soon"
    data["executions"][1]["ramp_uuid"] = str(uuid.uuid4())
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))

    result = app.test_cli_runner().invoke(args=["scenario", "load", str(path)])

    assert result.exit_code == 1
    assert "executions[3].created_at: Not a valid datetime." in result.stderr
    assert set(_counts(session_factory).values()) == {0}


def test_cli_reports_generated_api_key_once(app, tmp_path, session_factory):
    data = sc.scenario()
    data["api_keys"] = [{"name": "bot", "role": "ONRAMP_ADMIN"}]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(data))
    result = app.test_cli_runner().invoke(args=["scenario", "load", str(path)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "api key bot:" in line)
    key = line.split("key=")[1].split()[0]
    secret = line.split("secret=")[1].strip()
    with session_factory() as s, s.begin():
        assert authenticate_api_key(s, key, secret) is not None
