"""Outbox delivery: after commit, exactly once, signed; a failure is recorded and backed off, a row
that can never be delivered is marked failed, and no bad row holds up the rows behind it."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.models import ExecutionLog, Notification
from app.notifications.delivery import RetryPolicy, deliver, dispatch_pending
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
    session_factory,
    target: str,
    *,
    count: int = 1,
    channel: str = "webhook",
    suppressed: bool = False,
    payload: dict | None = None,
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
                payload=payload if payload is not None else dict(PAYLOAD, n=i),
                suppressed=suppressed,
            )
            for i in range(count)
        ]
        s.flush()
        return [r.id for r in rows]


def _rows(session_factory) -> list[Notification]:
    with session_factory() as s, s.begin():
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def _make_due(engine) -> None:
    """What waiting out the backoff would do: every pending row is due now."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE or_notification_outbox SET next_attempt_at = now() WHERE status = 'pending'"))


def _seconds_until_due(engine) -> list[float | None]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT extract(epoch FROM next_attempt_at - now()) FROM or_notification_outbox ORDER BY id")
            ).scalars()
        )


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


def test_failed_delivery_backs_off_then_dispatch_delivers(
    load, session_factory, engine, config, webhook_receiver, caplog
):
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
    [wait] = _seconds_until_due(engine)
    first = RetryPolicy().first_delay.total_seconds()
    assert first - 5 < wait <= first

    # Not due yet: a dispatch right away leaves it alone.
    webhook_receiver.respond(200)
    report = dispatch_pending(session_factory, config=config)
    assert (report.attempted, report.skipped) == (0, 0)
    assert len(webhook_receiver.requests) == 1

    _make_due(engine)
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
    assert "gave up: 0" in result.stdout
    assert [row.status for row in _rows(session_factory)] == ["delivered", "delivered", "pending"]
    assert uuid.UUID(webhook_receiver.requests[-1].header("X-Onramp-Delivery")) == _rows(session_factory)[2].uuid


@pytest.mark.parametrize(
    "target",
    [
        "owner@example.com\r\nBcc: everyone@example.com",
        "owner@example.com\n",
        "owner@example.com\r",
        "no-at-sign.example.com",
        "owner@",
        "@example.com",
        "two@at@example.com",
        "spaced owner@example.com",
        "owner@example..com",
        "Owner <owner@example.com>",
        "owner@example.com\t",
        "x" * 250 + "@example.com",
    ],
    ids=repr,
)
def test_an_invalid_address_fails_at_once_and_is_never_retried(load, session_factory, engine, config, target):
    load(sc.scenario())
    ids = _enqueue(session_factory, target, channel="email")
    with SmtpSink() as sink:
        smtp_config = dataclasses.replace(config, smtp_url=sink.url)
        report = deliver(session_factory, ids, config=smtp_config)
        _make_due(engine)
        again = dispatch_pending(session_factory, config=smtp_config)
        messages = sink.messages

    assert (report.failed, report.gave_up) == (1, 1)
    [row] = _rows(session_factory)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    assert row.last_error.startswith("invalid email address"), row.last_error
    assert report.errors[row.id] == row.last_error
    assert (again.attempted, again.skipped) == (0, 0)
    assert messages == []


def test_a_valid_address_is_not_refused(load, session_factory, config):
    load(sc.scenario())
    ids = _enqueue(session_factory, "o.wner+tag@mail.example.com", channel="email")
    report = deliver(session_factory, ids, config=config)
    assert (report.delivered, report.failed) == (1, 0)


def test_dispatch_picks_due_rows_and_failing_rows_move_behind(load, session_factory, config, webhook_receiver):
    load(sc.scenario(webhook_receiver.url))
    _enqueue(session_factory, f"{webhook_receiver.url}/down", count=3)
    _enqueue(session_factory, f"{webhook_receiver.url}/webhooks", count=2)
    webhook_receiver.respond(503, path="/down")

    first = dispatch_pending(session_factory, config=config, limit=3)
    second = dispatch_pending(session_factory, config=config, limit=3)

    assert (first.delivered, first.failed) == (0, 3)
    assert (second.delivered, second.failed) == (2, 0)
    assert len(webhook_receiver.requests_to("/down")) == 3  # not retried before they are due
    assert [r.status for r in _rows(session_factory)] == ["pending"] * 3 + ["delivered"] * 2


def test_backoff_doubles_up_to_the_cap_then_the_row_fails(load, session_factory, engine, config, webhook_receiver):
    load(sc.scenario(webhook_receiver.url))
    _enqueue(session_factory, f"{webhook_receiver.url}/webhooks")
    webhook_receiver.respond(503)
    policy = RetryPolicy(max_attempts=5, first_delay=timedelta(seconds=100), max_delay=timedelta(seconds=400))

    waits = []
    for _ in range(4):
        report = dispatch_pending(session_factory, config=config, policy=policy)
        assert (report.failed, report.gave_up) == (1, 0)
        [wait] = _seconds_until_due(engine)
        waits.append(round(wait / 10) * 10)
        _make_due(engine)
    last = dispatch_pending(session_factory, config=config, policy=policy)
    _make_due(engine)
    after = dispatch_pending(session_factory, config=config, policy=policy)

    assert waits == [100, 200, 400, 400]
    assert (last.failed, last.gave_up) == (1, 1)
    [row] = _rows(session_factory)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 5, None)
    assert "503" in row.last_error
    assert after.attempted == 0
    assert len(webhook_receiver.requests) == 5


def test_an_unexpected_error_while_sending_is_recorded_and_backed_off(load, session_factory, engine, config):
    load(sc.scenario())
    # A payload the email builder cannot read (a bug or bad data): not an SMTP failure.
    ids = _enqueue(session_factory, "owner@example.com", channel="email", payload={"project": ["not", "a", "dict"]})

    report = deliver(session_factory, ids, config=config)

    assert report.failed == 1
    [row] = _rows(session_factory)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "AttributeError" in row.last_error
    [wait] = _seconds_until_due(engine)
    assert wait > 0


def test_notify_step_records_an_invalid_owner_email_as_failed(client, load, session_factory, webhook_receiver):
    from app.signing import sign

    data = sc.scenario(webhook_receiver.url)
    load(data)
    body = {"trigger_key": "deal-42", "data": sc.payload("c-1", "Globex", "owner@example.com\r\nBcc: all@example.com")}
    raw = json.dumps(body).encode()

    response = client.post(
        f"/api/ramps/{data['ramps'][0]['uuid']}/trigger",
        data=raw,
        content_type="application/json",
        headers={"X-Onramp-Signature": sign(sc.SIGNING_SECRET, raw)},
    )

    assert response.status_code == 201 and response.get_json()["status"] == "SUCCESS", response.get_json()
    by_channel = {row.channel: row for row in _rows(session_factory)}
    email = by_channel["email"]
    assert (email.status, email.attempts, email.next_attempt_at) == ("failed", 0, None)
    assert email.last_error == "invalid email address: contains a line break (CR or LF)"
    assert by_channel["webhook"].status == "delivered"
    with session_factory() as s, s.begin():
        [line] = s.scalars(select(ExecutionLog.message).where(ExecutionLog.step == "notify"))
    assert "queued: webhook" in line and "email not queued: invalid address" in line, line
    assert "\r" not in line and "\n" not in line
