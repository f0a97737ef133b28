"""Application factory."""
from __future__ import annotations

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
