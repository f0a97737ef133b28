"""Blueprint registration: one line per feature blueprint."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.health import bp as health_bp

    app.register_blueprint(health_bp)

    from app.auth.views import bp as auth_bp

    app.register_blueprint(auth_bp)

    from app.triggers.views import bp as triggers_bp

    app.register_blueprint(triggers_bp)

    from app.retries.views import bp as retries_bp

    app.register_blueprint(retries_bp)

    from app.retries.job_views import bp as retry_jobs_bp

    app.register_blueprint(retry_jobs_bp)

    from app.admin.views import bp as admin_bp

    app.register_blueprint(admin_bp)

    from app.openapi import bp as openapi_bp

    app.register_blueprint(openapi_bp)
