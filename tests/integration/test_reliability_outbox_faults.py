"""Outbox faults: the CRM webhook receiver is down while replays run. Replays still succeed, their
notifications wait in the outbox (backed off), and `notifications dispatch` delivers each exactly
once later. Rows that can never be delivered do not hold up the others."""

from __future__ import annotations

from sqlalchemy import select

from app.models import Notification, RampExecution
from app.notifications.outbox import enqueue_many
from tests.support import scenarios as sc
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
    # The rows are backed off: a plain dispatch right away leaves them alone ...
    waiting = runner.invoke(args=["notifications", "dispatch"])
    assert waiting.exit_code == 0, waiting.output
    assert "delivered: 0, failed: 0" in waiting.stdout
    assert webhook_receiver.requests_to("/webhooks") == []
    # ... and the operator who knows the receiver is back sends them now.
    result = runner.invoke(args=["notifications", "dispatch", "--ignore-backoff"])
    assert result.exit_code == 0, result.output

    delivered = webhook_receiver.requests_to("/webhooks")
    assert len(delivered) == 3
    assert len({r.header("X-Onramp-Delivery") for r in delivered}) == 3
    assert all(n.status == "delivered" for n in _notifications(session_factory) if n.channel == "webhook")

    # A second dispatch finds nothing left: exactly once.
    again = runner.invoke(args=["notifications", "dispatch", "--ignore-backoff"])
    assert again.exit_code == 0, again.output
    assert len(webhook_receiver.requests_to("/webhooks")) == 3


def test_undeliverable_rows_never_block_the_rows_behind_them(app, load, session_factory, webhook_receiver):
    # Rows written before addresses were checked at write time: CR/LF in the address.
    load(sc.scenario(webhook_receiver.url))
    common = dict(vendor_id=1, execution_id=None, event="PROJECT_CREATED", payload={"n": 0}, suppressed=False)
    with session_factory() as s, s.begin():
        enqueue_many(
            s, [dict(common, channel="email", target=f"x{i}@example.com\r\nBcc: all@example.com") for i in range(200)]
        )
        enqueue_many(s, [dict(common, channel="webhook", target=f"{webhook_receiver.url}/webhooks") for _ in range(5)])
    runner = app.test_cli_runner()

    runs = [runner.invoke(args=["notifications", "dispatch", "--limit", "50"]) for _ in range(5)]

    assert [r.exit_code for r in runs] == [1, 1, 1, 1, 0], [r.output[:200] for r in runs]
    assert "gave up: 50" in runs[0].stdout
    assert len(webhook_receiver.requests_to("/webhooks")) == 5
    rows = _notifications(session_factory)
    assert {(n.channel, n.status, n.attempts) for n in rows} == {("email", "failed", 1), ("webhook", "delivered", 1)}
    assert all(n.last_error.startswith("invalid email address") for n in rows if n.channel == "email")
