"""The admin blueprint's plumbing: pages need a sign-in (an unsigned visitor goes to /auth/login
and comes back), every answer carries a strict Content-Security-Policy and `no-store`, and errors
are HTML pages in the one error vocabulary (code, message, details, request id)."""

from __future__ import annotations

import functools

from flask import Blueprint, g, redirect, render_template, request, url_for

from app.auth.access import authorize, has_role
from app.errors import AppError, Unauthorized
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# No inline script or style anywhere: scripts and stylesheets are files of this blueprint, and
# charts are SVG presentation attributes (not style), so nothing needs 'unsafe-inline'.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)


@bp.after_request
def _security_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # Pages show customer data and live state: never kept by a browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _here() -> str:
    query = request.query_string.decode("utf-8", "replace")
    return request.script_root + request.path + (f"?{query}" if query else "")


def page(view):
    """A page for viewers and admins; an unsigned (or expired) visitor is sent to sign in and
    brought back here afterwards."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            authorize(ROLE_VIEWER)
        except Unauthorized:
            return redirect(url_for("auth.login", next=_here()))
        return view(*args, **kwargs)

    return wrapper


def is_admin() -> bool:
    actor = g.get("actor")
    return actor is not None and has_role(actor.role, ROLE_ADMIN)


@bp.context_processor
def _who():
    return {"signed_in": g.get("actor"), "may_act": is_admin()}


@bp.errorhandler(AppError)
def _error_page(exc: AppError):
    body = render_template(
        "admin/error.html",
        status=exc.status_code,
        code=exc.code,
        message=exc.message,
        details=exc.details,
        request_id=g.get("request_id"),
    )
    return body, exc.status_code, exc.headers
