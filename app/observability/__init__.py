"""Observability: JSON logs with request ids (`logs`), Sentry (`sentry`).

`init_app` wires both into the Flask app; the names below are what the rest of the code uses.
"""

from __future__ import annotations

import logging

from flask import Flask

from app.config import Config
from app.observability.logs import (
    REQUEST_ID_HEADER,
    JsonFormatter,
    RequestIdFilter,
    configure_logging,
    current_request_id,
    install_request_hooks,
    request_id_context,
)
from app.observability.sentry import init_sentry, scrub_breadcrumb, scrub_event, sentry_options

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "RequestIdFilter",
    "configure_logging",
    "current_request_id",
    "init_app",
    "init_sentry",
    "request_id_context",
    "scrub_breadcrumb",
    "scrub_event",
    "sentry_options",
]

log = logging.getLogger(__name__)


def init_app(app: Flask, config: Config) -> None:
    configure_logging()
    if init_sentry(config):
        log.info("sentry enabled", extra={"environment": config.environment, "release": config.release})
    install_request_hooks(app)
