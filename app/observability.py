"""Logging and error reporting set-up (Sentry arrives with its own issue)."""
from __future__ import annotations

import logging
import uuid

from flask import Flask, g, request

from app.config import Config


def init_app(app: Flask, config: Config) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        # Accept a caller's id only if it is short and printable; never echo arbitrary input.
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        if g.get("request_id"):
            response.headers["X-Request-ID"] = g.request_id
        return response


def capture_replay_failure(exc: BaseException, *, tags: dict[str, str], actor: str | None) -> None:
    """Report a failed replay to Sentry (a no-op when Sentry is not initialised)."""
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        if actor:
            scope.set_user({"username": actor})
        sentry_sdk.capture_exception(exc)
