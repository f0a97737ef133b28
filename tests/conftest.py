"""Shared fixtures: one real PostgreSQL database per test session, built by the migrations.

Where the database comes from, first match wins:
  TEST_DATABASE_URL  a server to use (its database name is replaced by TEST_DB_NAME);
  DATABASE_URL       the same server as the service, but a separate test database;
  neither            the embedded PostgreSQL under instance/ (a fresh machine).
TEST_DB_NAME (default `onramp_test`) lets parallel runs keep out of each other's way.

Each test starts from empty tables (emptied after every test) rather than a rolled-back
transaction, because the concurrency tests need real commits seen by other connections.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import create_app
from app.config import Config
from app.db import make_engine, make_session_factory
from devtools.dbtools import recreate_database, server_url
from devtools.mocks.crm import MockCrm
from tests.support.tables import empty_tables


@pytest.fixture(scope="session")
def database_url() -> str:
    # One server rule for the tests, the rehearsal and the bench (devtools/dbtools.py).
    name = os.environ.get("TEST_DB_NAME", "onramp_test")
    url = recreate_database(server_url(), name)
    from app.migrate import upgrade

    upgrade(url)
    return url


@pytest.fixture(scope="session")
def config(database_url, tmp_path_factory) -> Config:
    return Config(
        database_url=database_url,
        instance_dir=Path(tmp_path_factory.mktemp("instance")),
        secret_key="test-secret-key-not-for-production",
        environment="test",
        testing=True,
        http_timeout_seconds=2.0,
    )


@pytest.fixture(scope="session")
def app(config):
    application = create_app(config)
    yield application
    application.extensions["onramp_db"].dispose()


@pytest.fixture(scope="session")
def engine(app):
    return app.extensions["onramp_db"].engine


@pytest.fixture(scope="session")
def session_factory(app):
    return app.extensions["onramp_db"].session_factory


@pytest.fixture
def session(session_factory):
    s = session_factory()
    yield s
    s.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(autouse=True)
def _clean_tables(request):
    # Only tests that touch the database pay for emptying it.
    uses_db = {"database_url", "app"} & set(request.fixturenames)
    engine = request.getfixturevalue("engine") if uses_db else None
    yield
    if engine is None:
        return
    empty_tables(engine)


@pytest.fixture
def make_engine_for(config):
    """Separate engines (own pools, own connections) for concurrency tests."""
    created = []

    def factory(**kwargs):
        e = make_engine(config.database_url, config, **kwargs)
        created.append(e)
        return e, make_session_factory(e)

    yield factory
    for e in created:
        e.dispose()


@pytest.fixture
def webhook_receiver():
    """The mock CRM (devtools/mocks/crm.py) on a free port: records every request the service
    sends (webhooks and record fetches); answers can be scripted with `respond(...)`."""
    with MockCrm() as crm:
        yield crm


@pytest.fixture
def load(session_factory):
    """`load(data) -> LoadReport`: load a scenario dict in its own committed transaction."""
    from app.scenarios import load_scenario

    def _load(data: dict):
        session = session_factory()
        try:
            with session.begin():
                return load_scenario(session, data)
        finally:
            session.close()

    return _load
