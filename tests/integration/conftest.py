"""Fixtures shared by the integration tests (the database ones are in tests/conftest.py).

The auth fixtures: a mock OIDC provider on 127.0.0.1:0 (one per test module) and an app wired to it
with a test-only blueprint guarded by `require_role` (tests/integration/auth_support.py).
"""

from __future__ import annotations

import dataclasses

import pytest

from app import create_app
from devtools.mock_oidc import MockOIDCProvider
from tests.integration.auth_support import CLIENT_ID, CLIENT_SECRET, PUBLIC_BASE_URL, probe_blueprint


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
    # `engine` pulls in the TRUNCATE-after-test fixture from tests/conftest.py.
    application, calls = auth_app_and_calls
    calls.clear()
    return application


@pytest.fixture
def admin_calls(auth_app_and_calls):
    return auth_app_and_calls[1]
