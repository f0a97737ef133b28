"""PostgreSQL's own error text quotes row values (a unique violation's DETAIL, the value of a
failed cast, the statement line psycopg2 filled in); none of it may reach the log or Sentry.
What is logged instead: SQLSTATE, condition name, constraint, table."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
import sentry_sdk
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app import create_app, observability
from app.models.identity import ROLE_ADMIN, User
from tests.support.sentry import DSN, CollectingTransport

CUSTOMER_EMAIL = "jane.customer@globex-payload.test"


def _json_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


@pytest.fixture
def sentry_events(config):
    collector = CollectingTransport()
    assert observability.init_sentry(replace(config, sentry_dsn=DSN), transport=collector)
    yield collector
    sentry_sdk.init()  # back to a client that sends nothing


@pytest.fixture
def duplicate_app(config):
    """The app with one extra view that inserts a user whose email is already taken."""
    application = create_app(config)

    @application.post("/_test/duplicate-user")
    def _duplicate():
        factory = application.extensions["onramp_db"].session_factory
        with factory() as session, session.begin():
            session.add(User(email=CUSTOMER_EMAIL, role=ROLE_ADMIN))
        return {"created": True}

    yield application
    application.extensions["onramp_db"].dispose()


def test_unique_violation_detail_stays_out_of_the_log_and_sentry(duplicate_app, session_factory, capsys):
    with session_factory() as session, session.begin():
        session.add(User(email=CUSTOMER_EMAIL, role=ROLE_ADMIN))
    collector = CollectingTransport()
    # After create_app: the app's own init_sentry ran without a DSN.
    assert observability.init_sentry(replace(duplicate_app.config["ONRAMP"], sentry_dsn=DSN), transport=collector)
    try:
        capsys.readouterr()
        response = duplicate_app.test_client().post("/_test/duplicate-user", headers={"X-Request-ID": "req-dup-1"})
        sentry_sdk.flush()
        err = capsys.readouterr().err
    finally:
        sentry_sdk.init()

    assert response.status_code == 500
    assert CUSTOMER_EMAIL not in response.get_data(as_text=True)
    # The log says what went wrong, without the value.
    (line,) = [e for e in _json_lines(err) if e["message"] == "unhandled error"]
    assert line["request_id"] == "req-dup-1"
    assert line["db_error"]["sqlstate"] == "23505"
    assert line["db_error"]["condition"] == "unique_violation"
    assert line["db_error"]["constraint"] == "uq_or_users_email"
    assert line["db_error"]["table"] == "or_users"
    assert "IntegrityError" in line["exc"] and "UniqueViolation" in line["exc"]
    assert "_duplicate" in line["exc"]  # the traceback is still there
    assert CUSTOMER_EMAIL not in err
    assert "jane.customer" not in err
    # Sentry gets the event, also without the value.
    assert collector.events, "the unhandled database error must reach Sentry"
    raw = collector.raw()
    assert CUSTOMER_EMAIL not in raw and "jane.customer" not in raw
    event = next(e for e in collector.events if e.get("exception"))
    values = event["exception"]["values"]
    assert values[-1]["type"] == "IntegrityError"
    assert "23505" in values[-1]["value"] and "uq_or_users_email" in values[-1]["value"]


def test_cast_error_value_and_statement_line_stay_out_of_the_log_and_sentry(session_factory, sentry_events, capsys):
    # As the replay does: log.exception inside an except block, and the error as a %s argument.
    log = logging.getLogger("app.retries.replay_unit")
    observability.configure_logging()
    capsys.readouterr()
    with pytest.raises(DBAPIError) as caught, session_factory() as session, session.begin():
        session.execute(text("SELECT CAST(:v AS integer)"), {"v": CUSTOMER_EMAIL})
    assert CUSTOMER_EMAIL in str(caught.value)  # what PostgreSQL really said
    try:
        raise RuntimeError("replay failed") from caught.value
    except RuntimeError:
        log.exception("batch b-1: replay of e-1 failed outside the runner")
    log.error("could not record the failed replay: %s", caught.value)
    sentry_sdk.flush()
    err = capsys.readouterr().err

    lines = [e for e in _json_lines(err) if e["logger"] == "app.retries.replay_unit"]
    assert len(lines) == 2
    chained, as_argument = lines
    assert chained["db_error"]["sqlstate"] == "22P02"
    assert chained["db_error"]["condition"] == "invalid_text_representation"
    assert "InvalidTextRepresentation" in chained["exc"] and "RuntimeError: replay failed" in chained["exc"]
    assert "22P02" in as_argument["message"]
    assert CUSTOMER_EMAIL not in err and "jane.customer" not in err
    raw = sentry_events.raw()
    assert sentry_events.events, "both ERROR lines reach Sentry"
    assert CUSTOMER_EMAIL not in raw and "jane.customer" not in raw


def test_an_unreachable_database_is_one_line_with_the_drivers_reason(config, capsys):
    from devtools.service import free_port

    down = replace(config, database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere")
    application = create_app(down)
    try:
        capsys.readouterr()
        response = application.test_client().post(
            "/api/ramps/executions/retry-batch",
            json={"since": "2026-05-11T00:00:00Z"},
            headers={"Authorization": "k-1", "or-internal-api-auth-secret": "s-1"},
        )
        err = capsys.readouterr().err
    finally:
        application.extensions["onramp_db"].dispose()
    assert response.status_code == 503
    (line,) = [e for e in _json_lines(err) if e["message"].startswith("database unavailable")]
    assert "Connection refused" in line["message"] and "[SQL" not in line["message"]
    assert line["db_error"] == {"error": "OperationalError"}
    assert "exc" not in line


def test_a_broken_lanes_reason_names_the_database_error_without_its_text(session_factory):
    # A retry job's `state_reason` is read by viewers and written to its events and log line.
    from app.retries.job_lane import failure_reason

    with pytest.raises(DBAPIError) as caught, session_factory() as session, session.begin():
        session.execute(text("SELECT CAST(:v AS integer)"), {"v": CUSTOMER_EMAIL})
    try:
        raise RuntimeError("lane broke") from caught.value
    except RuntimeError as chained:
        wrapped = chained
    for exc in (caught.value, wrapped):
        reason = failure_reason(exc)
        assert "SQLSTATE 22P02" in reason, reason
        assert CUSTOMER_EMAIL not in reason and "jane.customer" not in reason and "SELECT" not in reason
    assert failure_reason(ValueError("plain bug")) == "ValueError: plain bug"
