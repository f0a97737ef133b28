"""GET /auth/login, GET /auth/callback, POST /auth/logout, GET /auth/me."""

from __future__ import annotations

import base64
import hashlib

from flask import Blueprint, current_app, jsonify, redirect, request, url_for
from flask import session as cookie_session
from markupsafe import escape

from app.auth import sessions, signin
from app.auth.access import Actor, current_actor, enforce_json_for_cookie, require_role
from app.db import get_database
from app.models.identity import ROLE_VIEWER

bp = Blueprint("auth", __name__, url_prefix="/auth")


# Where to go after sign-in, kept in the signed cookie session across the provider round trip.
NEXT_KEY = "next"


@bp.get("/login")
def login():
    next_path = signin.safe_next_path(request.args.get("next"))
    response = signin.begin_sign_in(get_database().session_factory, request.remote_addr)
    if next_path is None:
        cookie_session.pop(NEXT_KEY, None)  # an unsafe or absent `next` never outlives this login
    else:
        cookie_session[NEXT_KEY] = next_path
    return response


@bp.get("/callback")
def callback():
    # Checked again on the way out: the cookie may come from an older version of this code.
    next_path = signin.safe_next_path(cookie_session.get(NEXT_KEY))
    signed_in = signin.complete_sign_in(get_database().session_factory, request.remote_addr)
    # A fresh cookie session (no fixation): only the new sid survives.
    cookie_session.clear()
    cookie_session["sid"] = str(signed_in.sid)
    cookie_session.permanent = True
    return redirect(next_path or url_for("auth.me"))


@bp.post("/logout")
def logout():
    sid = sessions.parse_sid(cookie_session.get("sid"))
    signed_out = False
    if sid is not None:
        # Same CSRF rule as every cookie-authenticated write.
        enforce_json_for_cookie(Actor(kind="user", name="", role=""))
        signed_out = signin.sign_out(get_database().session_factory, sid)
    cookie_session.clear()
    return jsonify({"signed_out": signed_out})


@bp.get("/me")
@require_role(ROLE_VIEWER)
def me():
    actor = current_actor()
    body = {"kind": actor.kind, "name": actor.name, "role": actor.role}
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        response = current_app.response_class(_me_html(actor), mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src '{_SCRIPT_HASH}';"
            " connect-src 'self'; frame-ancestors 'none'"
        )
    else:
        response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


_LOGOUT_SCRIPT = (
    "document.getElementById('logout').addEventListener('click',function(){"
    "fetch('/auth/logout',{method:'POST',headers:{'Content-Type':'application/json'},body:'{}'})"
    ".then(function(){location.href='/auth/login';});});"
)
# The page's CSP allows exactly this script and nothing else.
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_LOGOUT_SCRIPT.encode()).digest()).decode()


def _me_html(actor: Actor) -> str:
    who = escape(actor.name)
    role = escape(actor.role)
    base = escape((current_app.config["ONRAMP"].public_base_url or request.host_url).rstrip("/"))
    curl = ""
    if actor.kind == "user":
        curl = f"""
<h2>Using this sign-in from curl</h2>
<p>The <code>session</code> cookie is HttpOnly, so this page cannot show it. Open your browser's
developer tools (Application / Storage &rarr; Cookies &rarr; {base}), copy the value of the cookie
named <code>session</code>, then:</p>
<pre>export ONRAMP_SESSION='&lt;paste the value&gt;'
curl -sS -X POST {base}/api/ramps/executions/retry-batch \\
  -b "session=$ONRAMP_SESSION" \\
  -H 'Content-Type: application/json' \\
  -d '{{"since": "2026-05-11T00:00:00Z", "dry_run": true}}'</pre>
<p>Requests that change something must send <code>Content-Type: application/json</code>;
anything else is refused (415). Treat the cookie like a password: it works until you sign out
or it expires.</p>
<button id="logout" type="button">Sign out</button>
<script>{_LOGOUT_SCRIPT}</script>"""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed in - onramp</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style>
</head><body>
<h1>Signed in</h1>
<p>You are <strong>{who}</strong> with role <strong>{role}</strong>.</p>
<p><a href="{escape(url_for("admin.overview"))}">Open the admin page</a></p>{curl}
</body></html>"""
