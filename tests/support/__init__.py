"""Helpers shared by the test modules (scenario builders, invariants, Sentry transport); the
mock servers they use are in devtools/mocks/ and the fixtures in the conftest.py files."""
