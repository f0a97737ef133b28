"""Sentry for tests: a transport that keeps events in memory instead of sending them anywhere.
The fixtures built on it (`sentry_config`, `sentry_events`, `reset_sentry`) are in
tests/integration/conftest.py."""

from __future__ import annotations

from sentry_sdk.transport import Transport

# Never reached: events go to the CollectingTransport, not to this address.
DSN = "http://public@127.0.0.1/1"


class CollectingTransport(Transport):
    """Keeps envelopes in memory instead of sending them."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    @property
    def events(self) -> list[dict]:
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]

    def raw(self) -> str:
        return "\n".join(e.serialize().decode("utf-8", "replace") for e in self.envelopes)
