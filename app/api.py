"""Blueprint registration: one line per feature blueprint."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.health import bp as health_bp

    app.register_blueprint(health_bp)
