"""Application factory."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from app.config import Config


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__, instance_path=str(config.instance_dir), instance_relative_config=False)
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=config.max_content_length,
        TESTING=config.testing,
        ONRAMP=config,
        # The signed `session` cookie carries only the server-side sid (app/auth/sessions.py).
        SESSION_COOKIE_NAME="session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.session_absolute_hours),
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.json.sort_keys = False

    from app import observability

    observability.init_app(app, config)

    from app import db

    db.init_app(app, config)

    from app.errors import register_error_handlers

    register_error_handlers(app)

    from app.api import register_blueprints

    register_blueprints(app)

    from app.cli import register_cli

    register_cli(app)
    return app
