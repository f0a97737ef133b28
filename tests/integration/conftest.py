"""Fixtures shared by the integration tests (the database ones are in tests/conftest.py).

The auth fixtures: a mock OIDC provider on 127.0.0.1:0 (one per test module) and an app wired to it
with a test-only blueprint guarded by `require_role` (tests/integration/auth_support.py).

Sentry on with events kept in memory (`sentry_events`), and the real service as a separate
process on the test database (`service_process`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from pathlib import Path

import pytest
import sentry_sdk

from app import create_app, observability
from app.embedded_db import ensure_database, ensure_server, get_running_server, stop_server
from devtools.mock_oidc import MockOIDCProvider
from devtools.service import ServiceProcess
from tests.integration.auth_support import CLIENT_ID, CLIENT_SECRET, PUBLIC_BASE_URL, probe_blueprint
from tests.support.sentry import DSN, CollectingTransport


@pytest.fixture(scope="module")
def provider():
    with MockOIDCProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as running:
        yield running


@pytest.fixture(autouse=False)
def fresh_provider(provider):
    provider.reset()
    yield provider
    provider.reset()


@pytest.fixture(scope="module")
def auth_app_and_calls(config, provider):
    calls: list = []
    auth_config = dataclasses.replace(
        config,
        oidc_metadata_url=provider.metadata_url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        admin_email_domains=("example.com",),
        public_base_url=PUBLIC_BASE_URL,
        session_cookie_secure=True,
    )
    application = create_app(auth_config)
    application.register_blueprint(probe_blueprint(calls))
    yield application, calls
    application.extensions["onramp_db"].dispose()


@pytest.fixture
def auth_app(auth_app_and_calls, fresh_provider, engine):
    # `engine` pulls in the emptying-after-test fixture from tests/conftest.py.
    application, calls = auth_app_and_calls
    calls.clear()
    return application


@pytest.fixture
def admin_calls(auth_app_and_calls):
    return auth_app_and_calls[1]


@pytest.fixture
def reset_sentry():
    yield
    sentry_sdk.init()  # back to a client that sends nothing, for the rest of the suite


@pytest.fixture
def sentry_config(config):
    return dataclasses.replace(config, sentry_dsn=DSN, release="onramp@1.2.3", environment="staging")


@pytest.fixture
def sentry_events(sentry_config, reset_sentry) -> CollectingTransport:
    """Sentry on (sentry_config), every event kept in memory; off again afterwards."""
    collector = CollectingTransport()
    assert observability.init_sentry(sentry_config, transport=collector)
    return collector


# What a service process may read from the environment (app/config.py) is set here or removed:
# nothing inherited from the shell running the tests may point it at a real mail server or IdP.
_SERVICE_ENV_DROPPED = ("SMTP_URL", "OIDC_METADATA_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "WEB_CONCURRENCY")


@pytest.fixture
def service_process(database_url, tmp_path):
    """`service_process(name, **options)`: an unstarted ServiceProcess (devtools/service.py) on the
    test database, one worker (a kill must reach the process serving the request); use it as
    `with service_process("first") as service:`, which always stops what it started."""

    def make(name: str = "service", *, http_timeout_seconds: float = 5.0, **options) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if k not in _SERVICE_ENV_DROPPED}
        env.update(
            ONRAMP_ENV="test",
            ONRAMP_INSTANCE_DIR=str(tmp_path / name / "instance"),
            HTTP_TIMEOUT_SECONDS=str(http_timeout_seconds),
        )
        options.setdefault("workers", 1)
        return ServiceProcess(database_url, tmp_path / name / "service.log", env=env, **options)

    return make


@pytest.fixture
def private_pg(tmp_path_factory):
    """A private PostgreSQL (own pgdata and port) that a test may stop and restart; always stopped
    and deleted afterwards. (instance dir, server)"""
    instance = Path(tmp_path_factory.mktemp("private-pg"))
    try:
        server = ensure_server(instance)
        ensure_database(server, "onramp")
        yield instance, server
    finally:
        try:
            stop_server(instance)
        finally:
            leftover = get_running_server(instance)
            if leftover is not None:  # pg_ctl stop failed: immediate shutdown of our postmaster
                os.kill(leftover.pid, signal.SIGQUIT)
            shutil.rmtree(instance, ignore_errors=True)
