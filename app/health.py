"""GET /healthz: the app answers and so does its database."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_database

bp = Blueprint("health", __name__)

# Same as the database_unavailable 503 (app/errors.py): a load balancer or client polling here
# should back off exactly as long as the API tells every other caller to.
RETRY_AFTER_SECONDS = 5


@bp.get("/healthz")
def healthz():
    try:
        with get_database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        body = {"status": "error", "database": "unreachable", "detail": type(exc).__name__}
        return jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify({"status": "ok", "database": "ok"})
