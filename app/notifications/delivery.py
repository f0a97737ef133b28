"""Delivering outbox rows after the commit that wrote them.

Each notification is handled in its own short transaction: lock the row if it is still pending
(`FOR UPDATE SKIP LOCKED`, so a concurrent dispatcher skips it instead of sending it twice), send,
then record the outcome (delivered, or still pending with `last_error`) and commit. Suppressed
rows are never selected. Webhook receivers can also dedupe on `X-Onramp-Delivery`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.models import CrmIntegration, Notification
from app.models.base import utcnow
from app.notifications.email import EmailError, send_email
from app.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

EVENT_HEADER = "X-Onramp-Event"
DELIVERY_HEADER = "X-Onramp-Delivery"
_MAX_ERROR = 500


class DeliveryError(Exception):
    """A failed attempt; the message is stored as `last_error` (never contains a secret)."""


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    # Not pending any more (delivered or suppressed) or being delivered by someone else.
    skipped: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed

    def merge(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.skipped += other.skipped
        self.errors.update(other.errors)

    def summary_lines(self) -> list[str]:
        lines = [f"delivered: {self.delivered}, failed: {self.failed}, skipped: {self.skipped}"]
        lines += [f"notification {nid}: {error}" for nid, error in sorted(self.errors.items())]
        return lines


def webhook_body(notification: Notification) -> bytes:
    """Compact, key-sorted JSON: the same row always yields the same bytes (and signature)."""
    return json.dumps(notification.payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _send_webhook(session: Session, notification: Notification, config: Config) -> None:
    secret = session.scalar(
        select(CrmIntegration.signing_secret).where(CrmIntegration.vendor_id == notification.vendor_id)
    )
    if not secret:
        raise DeliveryError("vendor has no CRM integration to sign the webhook with")
    body = webhook_body(notification)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_HEADER: notification.event,
        DELIVERY_HEADER: str(notification.uuid),
    }
    try:
        response = requests.post(notification.target, data=body, headers=headers, timeout=config.http_timeout_seconds)
    except requests.Timeout:
        raise DeliveryError(f"webhook timed out after {config.http_timeout_seconds:g}s") from None
    except requests.RequestException as exc:
        # The exception text repeats the URL; the type is enough to act on.
        raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook answered HTTP {response.status_code}: {response.text[:200]}")


def _send(session: Session, notification: Notification, config: Config) -> None:
    if notification.channel == "webhook":
        _send_webhook(session, notification, config)
    elif notification.channel == "email":
        try:
            send_email(notification, config=config)
        except EmailError as exc:
            raise DeliveryError(str(exc)) from None
    else:
        raise DeliveryError(f"unknown channel {notification.channel!r}")


def _deliver_one(session: Session, notification_id: int, config: Config, report: DeliveryReport) -> None:
    with session.begin():
        notification = session.scalar(
            select(Notification)
            .where(Notification.id == notification_id, Notification.status == "pending")
            .with_for_update(skip_locked=True)
        )
        if notification is None:
            report.skipped += 1
            return
        notification.attempts += 1
        try:
            _send(session, notification, config)
        except DeliveryError as exc:
            notification.last_error = str(exc)[:_MAX_ERROR]
            report.failed += 1
            report.errors[notification_id] = notification.last_error
            log.warning(
                "notification %s (%s to %s) failed attempt %s: %s",
                notification.uuid,
                notification.channel,
                notification.target,
                notification.attempts,
                exc,
            )
            return
        notification.status = "delivered"
        notification.delivered_at = utcnow()
        notification.last_error = None
        report.delivered += 1


def deliver(session_factory: sessionmaker[Session], notification_ids: list[int], *, config: Config) -> DeliveryReport:
    """Deliver the given rows that are still pending; call it after the commit that wrote them.

    Never raises for one bad notification: a failure is recorded on the row (or, for an
    unexpected error, logged and left for `notifications dispatch`) and the rest go on.
    """
    report = DeliveryReport()
    session = session_factory()
    try:
        for notification_id in notification_ids:
            try:
                _deliver_one(session, notification_id, config, report)
            except Exception as exc:  # a bug or a database hiccup must not stop the other rows
                log.exception("delivering notification %s failed unexpectedly", notification_id)
                report.failed += 1
                report.errors[notification_id] = f"{type(exc).__name__}"
    finally:
        session.close()
    return report


def pending_ids(session: Session, limit: int) -> list[int]:
    """Oldest pending rows first (a plain read: the claim happens per row in `deliver`)."""
    return list(
        session.scalars(
            select(Notification.id).where(Notification.status == "pending").order_by(Notification.id).limit(limit)
        )
    )


def dispatch_pending(session_factory: sessionmaker[Session], *, config: Config, limit: int = 500) -> DeliveryReport:
    """Retry up to `limit` pending notifications, each at most once per call."""
    session = session_factory()
    try:
        with session.begin():
            ids = pending_ids(session, limit)
    finally:
        session.close()
    return deliver(session_factory, ids, config=config)
