"""Delivering outbox rows after the commit that wrote them, and retrying them later.

Each notification is handled in its own short transaction: lock the row if it is still pending
and due (`FOR UPDATE SKIP LOCKED`, so a concurrent dispatcher skips it instead of sending it
twice), send, then record the outcome and commit. Webhook receivers can also dedupe on
`X-Onramp-Delivery`.

Every attempt is recorded, whatever went wrong (an unexpected exception included), so no row can
stay at the head of the queue forever:

- delivered: `delivered`, `next_attempt_at` cleared;
- failed, and worth retrying: still `pending`, `attempts` + 1, `last_error`, and
  `next_attempt_at` pushed back by `RetryPolicy.delay_after` (exponential, capped), which moves it
  behind the rows that are due;
- failed for good (`RetryPolicy.max_attempts` reached, or a failure no retry can fix, such as an
  invalid email address): `failed`, never selected again.

Suppressed and failed rows are never selected.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import requests
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.models import CrmIntegration, Notification
from app.models.base import utcnow
from app.notifications.email import EmailError, InvalidAddress, send_email
from app.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

EVENT_HEADER = "X-Onramp-Event"
DELIVERY_HEADER = "X-Onramp-Delivery"
_MAX_ERROR = 500


class DeliveryError(Exception):
    """A failed attempt; the message is stored as `last_error` (never contains a secret)."""


class PermanentDeliveryError(DeliveryError):
    """A failed attempt that no retry can fix: the row is marked `failed` at once."""


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed row is tried again, and when it is given up."""

    max_attempts: int = 24
    first_delay: timedelta = timedelta(minutes=1)
    max_delay: timedelta = timedelta(hours=1)

    def delay_after(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: first_delay, doubling, capped."""
        doublings = min(max(attempts - 1, 0), 40)  # bounded: timedelta overflows long before 2**64
        return min(self.first_delay * (2**doublings), self.max_delay)


DEFAULT_POLICY = RetryPolicy()


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # failed attempts, including those that gave up
    gave_up: int = 0  # rows marked `failed` by this run
    # Not pending or not due any more (delivered, failed, suppressed, backed off by another
    # dispatcher) or being delivered by someone else.
    skipped: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed

    def merge(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.gave_up += other.gave_up
        self.skipped += other.skipped
        self.errors.update(other.errors)

    def summary_lines(self) -> list[str]:
        lines = [
            f"delivered: {self.delivered}, failed: {self.failed}, gave up: {self.gave_up}, skipped: {self.skipped}"
        ]
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
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
        raise PermanentDeliveryError("webhook URL is not a valid http(s) URL") from None
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
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc)) from None
        except EmailError as exc:
            raise DeliveryError(str(exc)) from None
    else:
        raise PermanentDeliveryError(f"unknown channel {notification.channel!r}")


def _selectable(*, ignore_backoff: bool) -> tuple:
    """Pending rows, and (unless the backoff is ignored) only those whose next attempt is due."""
    pending = Notification.status == "pending"
    return (pending,) if ignore_backoff else (pending, Notification.next_attempt_at <= func.now())


def _deliver_one(
    session: Session,
    notification_id: int,
    config: Config,
    report: DeliveryReport,
    policy: RetryPolicy,
    *,
    ignore_backoff: bool,
) -> None:
    with session.begin():
        notification = session.scalar(
            select(Notification)
            .where(Notification.id == notification_id, *_selectable(ignore_backoff=ignore_backoff))
            .with_for_update(skip_locked=True)
        )
        if notification is None:
            report.skipped += 1
            return
        notification.attempts += 1
        try:
            _send(session, notification, config)
        except SQLAlchemyError:
            raise  # the transaction is gone; `deliver` logs it and goes on
        except Exception as exc:  # any failure is this row's: recorded below
            _record_failure(notification, exc, policy, report)
            return
        notification.status = "delivered"
        notification.delivered_at = utcnow()
        notification.next_attempt_at = None
        notification.last_error = None
        report.delivered += 1


def _record_failure(notification: Notification, exc: Exception, policy: RetryPolicy, report: DeliveryReport) -> None:
    if isinstance(exc, DeliveryError):
        error = str(exc)
    else:
        # A bug or bad data (say, a payload the email builder cannot read): the type names it;
        # the text may carry customer data, so it goes to the log only.
        error = f"unexpected {type(exc).__name__} while sending"
        log.exception("notification %s failed unexpectedly", notification.uuid)
    notification.last_error = error[:_MAX_ERROR]
    report.failed += 1
    report.errors[notification.id] = notification.last_error
    permanent = isinstance(exc, PermanentDeliveryError)
    if permanent or notification.attempts >= policy.max_attempts:
        notification.status = "failed"
        notification.next_attempt_at = None
        report.gave_up += 1
        outcome = "gave up" if permanent else f"gave up after {notification.attempts} attempts"
    else:
        delay = policy.delay_after(notification.attempts)
        notification.next_attempt_at = func.now() + delay
        outcome = f"next attempt in {delay}"
    log.warning(
        "notification %s (%s) failed attempt %s, %s: %s",
        notification.uuid,
        notification.channel,
        notification.attempts,
        outcome,
        notification.last_error,
    )


def deliver(
    session_factory: sessionmaker[Session],
    notification_ids: list[int],
    *,
    config: Config,
    policy: RetryPolicy = DEFAULT_POLICY,
    ignore_backoff: bool = False,
) -> DeliveryReport:
    """Deliver the given rows that are still pending and due; call it after the commit that wrote
    them (a row just written is due at once).

    Never raises for one bad notification: every failed attempt is recorded on its row. Only a
    database error that prevents recording it is logged and left for `notifications dispatch`.
    """
    report = DeliveryReport()
    session = session_factory()
    try:
        for notification_id in notification_ids:
            try:
                _deliver_one(session, notification_id, config, report, policy, ignore_backoff=ignore_backoff)
            except Exception as exc:  # a database hiccup must not stop the other rows
                log.exception("delivering notification %s failed unexpectedly", notification_id)
                report.failed += 1
                report.errors[notification_id] = f"{type(exc).__name__}"
    finally:
        session.close()
    return report


def due_ids(session: Session, limit: int, *, ignore_backoff: bool = False) -> list[int]:
    """Pending rows whose next attempt is due, soonest first (a plain read: the claim happens
    per row in `deliver`). Rows that failed were pushed back, so they come after the others."""
    return list(
        session.scalars(
            select(Notification.id)
            .where(*_selectable(ignore_backoff=ignore_backoff))
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
    )


def dispatch_pending(
    session_factory: sessionmaker[Session],
    *,
    config: Config,
    limit: int = 500,
    policy: RetryPolicy = DEFAULT_POLICY,
    ignore_backoff: bool = False,
) -> DeliveryReport:
    """Try up to `limit` due notifications, each at most once per call. `ignore_backoff` also
    takes pending rows whose next attempt has not come yet (the receiver is known to be back)."""
    session = session_factory()
    try:
        with session.begin():
            ids = due_ids(session, limit, ignore_backoff=ignore_backoff)
    finally:
        session.close()
    return deliver(session_factory, ids, config=config, policy=policy, ignore_backoff=ignore_backoff)
