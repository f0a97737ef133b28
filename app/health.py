"""GET /healthz: the app answers and so does its database."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    try:
        with get_database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return jsonify({"status": "error", "database": "unreachable", "detail": type(exc).__name__}), 503
    return jsonify({"status": "ok", "database": "ok"})
