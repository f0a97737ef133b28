"""GET /healthz: the app answers and so does its database."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_database
from app.errors import RETRY_AFTER_SECONDS

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    try:
        with get_database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        body = {"status": "error", "database": "unreachable", "detail": type(exc).__name__}
        return jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify({"status": "ok", "database": "ok"})
