"""The "project created" email: sent over SMTP when SMTP_URL is set, otherwise written to the log.

SMTP_URL forms: `smtp://host:port` (plain, STARTTLS when the server offers it and credentials are
given), `smtps://host:port` (implicit TLS); `user:password@` is optional. The password is never
logged.
"""

from __future__ import annotations

import logging
import re
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from app.config import Config
from app.models import Notification

log = logging.getLogger("onramp.email")


class EmailError(Exception):
    """A send that failed; the notification is tried again later, with this message."""


class InvalidAddress(EmailError):
    """The recipient address can never be sent to: retrying cannot help."""


INVALID_ADDRESS = "invalid email address"
MAX_ADDRESS_LENGTH = 254  # RFC 5321's limit on a forward path, less its angle brackets
# One bare addr-spec, local@domain: no display name, comments, quoting, spaces or a second @.
_ADDRESS = re.compile(r'[^@\s"(),:;<>\[\\\]]+@[^@\s"(),:;<>\[\\\]]+\Z')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def address_problem(address: object) -> str | None:
    """Why `address` cannot be an email recipient (`"invalid email address: ..."`), else None.

    Checked when the notification is written and again before sending: a CR or LF would let the
    address inject headers, and the email module refuses it anyway.
    """
    if not isinstance(address, str) or not address:
        reason = "empty or not a string"
    elif "\r" in address or "\n" in address:
        reason = "contains a line break (CR or LF)"
    elif _CONTROL.search(address):
        reason = "contains a control character"
    elif len(address) > MAX_ADDRESS_LENGTH:
        reason = f"longer than {MAX_ADDRESS_LENGTH} characters"
    elif not _ADDRESS.match(address):
        reason = "not a single local@domain address"
    elif "" in address.rpartition("@")[2].split("."):
        reason = "the domain has an empty label"
    else:
        return None
    return f"{INVALID_ADDRESS}: {reason}"


def build_message(notification: Notification, *, sender: str) -> EmailMessage:
    payload = notification.payload or {}
    project = payload.get("project") or {}
    account = payload.get("account") or {}
    name = project.get("name") or "(unnamed)"
    message = EmailMessage()
    message["Subject"] = f"Project created: {name}"
    message["From"] = sender
    message["To"] = notification.target
    # Stable id per notification: a retried delivery is recognisable as the same email.
    message["Message-ID"] = f"<{notification.uuid}@onramp>"
    lines = [
        f'The onboarding project "{name}" was created.',
        "",
        f"Project: {project.get('uuid', '-')}",
        f"Account: {account.get('name', '-')} ({account.get('uuid', '-')})",
        f"Execution: {payload.get('execution_uuid', '-')}",
        f"Trigger: {payload.get('trigger_key') or '-'}",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email(notification: Notification, *, config: Config) -> str:
    """Send (or log) the email; returns a short description of what was done."""
    problem = address_problem(notification.target)
    if problem:
        raise InvalidAddress(problem)
    message = build_message(notification, sender=config.email_from)
    if not config.smtp_url:
        log.info(
            "email not sent (SMTP_URL unset) to=%s subject=%r delivery=%s\n%s",
            notification.target,
            message["Subject"],
            notification.uuid,
            message.get_content(),
        )
        return "logged"
    url = urlsplit(config.smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise EmailError("SMTP_URL must look like smtp://host:port or smtps://host:port")
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    port = url.port or (465 if url.scheme == "smtps" else 25)
    try:
        with smtp_class(url.hostname, port, timeout=config.http_timeout_seconds) as smtp:
            if url.username:
                smtp.ehlo_or_helo_if_needed()
                if url.scheme == "smtp" and smtp.has_extn("starttls"):
                    smtp.starttls()
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The exception text can echo the server's reply, never our password.
        raise EmailError(f"SMTP {url.hostname}:{port}: {type(exc).__name__}: {exc}"[:500]) from None
    return "sent"
