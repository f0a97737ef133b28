"""/healthz while PostgreSQL cannot be reached: 503 with the same Retry-After as every other 503."""

from __future__ import annotations

import dataclasses
import socket
import uuid

import pytest

from app import create_app


def _closed_port() -> int:
    # A port that nothing listens on: bind, read the number, close.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_without_database(config):
    unreachable = f"postgresql+psycopg2://postgres@127.0.0.1:{_closed_port()}/nowhere"
    application = create_app(dataclasses.replace(config, database_url=unreachable))
    yield application
    application.extensions["onramp_db"].dispose()


def test_healthz_503_says_when_to_retry(app_without_database):
    client = app_without_database.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["database"] == "unreachable"

    # Any request that needs the database answers database_unavailable; /healthz agrees on when.
    other = client.post(f"/api/ramps/{uuid.uuid4()}/trigger", data=b"{}", content_type="application/json")
    assert other.status_code == 503 and other.get_json()["error"]["code"] == "database_unavailable"
    assert health.headers.get("Retry-After") == other.headers["Retry-After"] == "5"
