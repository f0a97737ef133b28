"""Outbox faults: the CRM webhook receiver is down while replays run. Replays still succeed, their
notifications wait in the outbox, and `notifications dispatch` delivers each exactly once later."""

from __future__ import annotations

from sqlalchemy import select

from app.models import Notification, RampExecution
from tests.support.retry_scenarios import api_key_headers, backlog, post, window


def _notifications(session_factory) -> list[Notification]:
    with session_factory() as s, s.begin():
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_replays_succeed_while_crm_is_down_and_dispatch_delivers_once_later(
    app, client, load, session_factory, webhook_receiver
):
    load(backlog(3, base_url=webhook_receiver.url))
    admin = api_key_headers(session_factory)
    webhook_receiver.respond(503)

    response = post(client, admin, window(dry_run=False))

    assert response.status_code == 200, response.get_json()
    summary = response.get_json()["summary"]
    assert (summary["success"], summary["error"]) == (3, 0)
    with session_factory() as s, s.begin():
        assert set(s.scalars(select(RampExecution.status_code))) == {"SUCCESS"}
    pending = _notifications(session_factory)
    webhooks = [n for n in pending if n.channel == "webhook"]
    assert len(webhooks) == 3
    assert all(n.status == "pending" and n.attempts == 1 and n.last_error for n in webhooks)
    assert len(webhook_receiver.requests_to("/webhooks")) == 3  # each tried once, right after commit

    webhook_receiver.respond(200)
    webhook_receiver.reset()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["notifications", "dispatch"])
    assert result.exit_code == 0, result.output

    delivered = webhook_receiver.requests_to("/webhooks")
    assert len(delivered) == 3
    assert len({r.header("X-Onramp-Delivery") for r in delivered}) == 3
    assert all(n.status == "delivered" for n in _notifications(session_factory) if n.channel == "webhook")

    # A second dispatch finds nothing left: exactly once.
    again = runner.invoke(args=["notifications", "dispatch"])
    assert again.exit_code == 0, again.output
    assert len(webhook_receiver.requests_to("/webhooks")) == 3
