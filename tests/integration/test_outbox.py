"""Outbox delivery: after commit, exactly once, signed; failures stay pending for dispatch."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid

from sqlalchemy import select

from app.models import Notification
from app.notifications.delivery import deliver, dispatch_pending
from app.notifications.outbox import enqueue
from app.signing import verify
from devtools.mocks.smtp import SmtpSink
from tests.support import scenarios as sc

PAYLOAD = {
    "event": "PROJECT_CREATED",
    "vendor_id": 1,
    "project": {"uuid": "5b0c7c1e-0000-4000-8000-000000000001", "name": "Globex"},
    "account": {"uuid": "5b0c7c1e-0000-4000-8000-000000000002", "name": "Globex"},
    "execution_uuid": "5b0c7c1e-0000-4000-8000-000000000003",
    "trigger_key": "deal-42",
}


def _enqueue(
    session_factory, target: str, *, count: int = 1, channel: str = "webhook", suppressed: bool = False
) -> list[int]:
    with session_factory() as s, s.begin():
        rows = [
            enqueue(
                s,
                vendor_id=1,
                execution_id=None,
                channel=channel,
                event="PROJECT_CREATED",
                target=target,
                payload=dict(PAYLOAD, n=i),
                suppressed=suppressed,
            )
            for i in range(count)
        ]
        s.flush()
        return [r.id for r in rows]


def _rows(session_factory) -> list[Notification]:
    with session_factory() as s, s.begin():
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_webhook_is_delivered_once_and_signed(load, session_factory, config, webhook_receiver):
    load(sc.scenario(webhook_receiver.url))
    ids = _enqueue(session_factory, f"{webhook_receiver.url}/webhooks")

    report = deliver(session_factory, ids, config=config)
    again = deliver(session_factory, ids, config=config)

    assert (report.delivered, report.failed) == (1, 0)
    assert (again.delivered, again.skipped) == (0, 1)
    [request] = webhook_receiver.requests
    [row] = _rows(session_factory)
    assert (request.method, request.path) == ("POST", "/webhooks")
    assert request.json() == dict(PAYLOAD, n=0)
    assert verify(sc.SIGNING_SECRET, request.body, request.header("X-Onramp-Signature"))
    assert not verify("another-secret", request.body, request.header("X-Onramp-Signature"))
    assert request.header("X-Onramp-Event") == "PROJECT_CREATED"
    assert request.header("X-Onramp-Delivery") == str(row.uuid)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 1, None)
    assert row.delivered_at is not None


def test_concurrent_dispatchers_deliver_each_row_exactly_once(
    load, session_factory, config, webhook_receiver, make_engine_for
):
    load(sc.scenario(webhook_receiver.url))
    _enqueue(session_factory, f"{webhook_receiver.url}/webhooks", count=30)
    webhook_receiver.respond(200, delay=0.02)  # keep sends slow enough to overlap
    factories = [make_engine_for()[1] for _ in range(2)]
    reports = []
    barrier = threading.Barrier(2)

    def dispatcher(factory):
        barrier.wait()
        reports.append(dispatch_pending(factory, config=config))

    threads = [threading.Thread(target=dispatcher, args=(f,)) for f in factories]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    deliveries = [r.header("X-Onramp-Delivery") for r in webhook_receiver.requests]
    assert len(deliveries) == 30 and len(set(deliveries)) == 30
    assert sum(r.delivered for r in reports) == 30
    assert {(row.status, row.attempts) for row in _rows(session_factory)} == {("delivered", 1)}


def test_suppressed_rows_are_never_delivered(load, session_factory, config, webhook_receiver):
    load(sc.scenario(webhook_receiver.url))
    ids = _enqueue(session_factory, f"{webhook_receiver.url}/webhooks", suppressed=True)

    deliver(session_factory, ids, config=config)
    dispatch_pending(session_factory, config=config)

    assert webhook_receiver.requests == []
    [row] = _rows(session_factory)
    assert (row.status, row.attempts, row.delivered_at) == ("suppressed", 0, None)


def test_failed_delivery_stays_pending_until_dispatch(load, session_factory, config, webhook_receiver, caplog):
    load(sc.scenario(webhook_receiver.url))
    ids = _enqueue(session_factory, f"{webhook_receiver.url}/webhooks")
    webhook_receiver.respond(503)

    with caplog.at_level(logging.DEBUG):
        report = deliver(session_factory, ids, config=config)

    assert report.failed == 1
    [row] = _rows(session_factory)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "503" in row.last_error
    assert sc.SIGNING_SECRET not in caplog.text

    webhook_receiver.respond(200)
    report = dispatch_pending(session_factory, config=config)

    assert report.delivered == 1
    [row] = _rows(session_factory)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert len(webhook_receiver.requests) == 2
    # Both attempts carry the same delivery id, so the receiver can dedupe.
    assert len({r.header("X-Onramp-Delivery") for r in webhook_receiver.requests}) == 1


def test_unreachable_receiver_records_the_error(load, session_factory, config, webhook_receiver):
    url = webhook_receiver.url
    webhook_receiver.stop()
    load(sc.scenario(url))
    ids = _enqueue(session_factory, f"{url}/webhooks")

    report = deliver(session_factory, ids, config=config)

    [row] = _rows(session_factory)
    assert report.failed == 1
    assert (row.status, row.attempts) == ("pending", 1)
    assert "unreachable" in row.last_error


def test_webhook_without_integration_fails_cleanly(load, session_factory, config, webhook_receiver):
    data = sc.scenario()
    data["vendors"][0]["integration"] = None
    load(data)
    ids = _enqueue(session_factory, f"{webhook_receiver.url}/webhooks")

    deliver(session_factory, ids, config=config)

    [row] = _rows(session_factory)
    assert row.status == "pending" and "integration" in row.last_error
    assert webhook_receiver.requests == []


def test_email_is_logged_when_smtp_is_unset(load, session_factory, config, caplog):
    load(sc.scenario())
    ids = _enqueue(session_factory, "owner@example.com", channel="email")

    with caplog.at_level(logging.INFO, logger="onramp.email"):
        report = deliver(session_factory, ids, config=config)

    assert report.delivered == 1
    assert "Project created: Globex" in caplog.text and "owner@example.com" in caplog.text
    assert _rows(session_factory)[0].status == "delivered"


def test_email_is_sent_over_smtp(load, session_factory, config):
    load(sc.scenario())
    ids = _enqueue(session_factory, "owner@example.com", channel="email")
    with SmtpSink() as sink:
        smtp_config = dataclasses.replace(config, smtp_url=sink.url, email_from="onramp@example.com")
        report = deliver(session_factory, ids, config=smtp_config)
        mails = sink.messages

    assert report.delivered == 1
    [mail] = mails
    message = mail.message
    assert message["Subject"] == "Project created: Globex"
    assert (message["To"], message["From"]) == ("owner@example.com", "onramp@example.com")
    assert "deal-42" in message.get_content()


def test_email_with_smtp_down_stays_pending(load, session_factory, config):
    load(sc.scenario())
    ids = _enqueue(session_factory, "owner@example.com", channel="email")
    with SmtpSink() as sink:
        url = sink.url
    report = deliver(session_factory, ids, config=dataclasses.replace(config, smtp_url=url))
    assert report.failed == 1
    [row] = _rows(session_factory)
    assert row.status == "pending" and row.last_error.startswith("SMTP")


def test_cli_dispatch_delivers_pending_rows(app, load, session_factory, webhook_receiver):
    load(sc.scenario(webhook_receiver.url))
    _enqueue(session_factory, f"{webhook_receiver.url}/webhooks", count=3)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["notifications", "dispatch", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "delivered: 2" in result.stdout
    assert len(webhook_receiver.requests) == 2

    webhook_receiver.respond(500)
    result = runner.invoke(args=["notifications", "dispatch"])
    assert result.exit_code == 1
    assert "failed: 1" in result.stdout
    assert [row.status for row in _rows(session_factory)] == ["delivered", "delivered", "pending"]
    assert uuid.UUID(webhook_receiver.requests[-1].header("X-Onramp-Delivery")) == _rows(session_factory)[2].uuid
