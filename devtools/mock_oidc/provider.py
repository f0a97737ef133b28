"""The mock provider as a WSGI app plus a threaded server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CODE_LIFETIME_SECONDS = 60
ID_TOKEN_LIFETIME_SECONDS = 600
KEY_ID = "mock-oidc-1"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    email: str
    email_verified: bool
    hd: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float


def _new_signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"})


def _json(data: dict, status: int = 200) -> Response:
    response = Response(json.dumps(data), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(error: str, description: str, status: int = 400) -> Response:
    return _json({"error": error, "error_description": description}, status)


def _with_query(url: str, params: dict) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class MockOIDCProvider:
    def __init__(
        self,
        *,
        client_id: str = "onramp-local",
        client_secret: str = "onramp-local-secret",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.host = host
        self.port = port
        self.key = _new_signing_key()
        # Test knobs.
        self.claim_overrides: dict = {}
        self.sign_with_unknown_key = False
        self.omit_id_token = False
        self.token_requests = 0
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self._rogue_key: RSAKey | None = None

    # --- addresses -------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metadata_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def metadata(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified", "hd"],
        }

    def reset(self) -> None:
        """Back to well-behaved (tests call this between cases)."""
        self.claim_overrides = {}
        self.sign_with_unknown_key = False
        self.omit_id_token = False
        with self._lock:
            self._grants.clear()

    # --- server ----------------------------------------------------------------------------
    def start(self) -> MockOIDCProvider:
        self._server = make_server(self.host, self.port, self.wsgi_app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-oidc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MockOIDCProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._server = make_server(self.host, self.port, self.wsgi_app, threaded=True)
        self.port = self._server.server_port
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    # --- WSGI ------------------------------------------------------------------------------
    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        routes = {
            ("GET", "/.well-known/openid-configuration"): lambda r: _json(self.metadata()),
            ("GET", "/jwks"): lambda r: _json({"keys": [self.key.as_dict(private=False)]}),
            ("GET", "/authorize"): self._authorize,
            ("POST", "/authorize"): self._authorize,
            ("POST", "/token"): self._token,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            response = _error("not_found", f"{request.method} {request.path} is not served", 404)
        else:
            response = handler(request)
        return response(environ, start_response)

    def _authorize(self, request: Request) -> Response:
        params: MultiDict = request.form if request.method == "POST" else request.args
        if params.get("client_id") != self.client_id:
            return _error("unauthorized_client", "unknown client_id")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return _error("invalid_request", "redirect_uri is required")
        if params.get("response_type") != "code":
            return _error("unsupported_response_type", "only response_type=code")
        if "openid" not in (params.get("scope") or "").split():
            return _error("invalid_scope", "scope must include openid")
        email = (params.get("email") or "").strip()
        if not email:
            return self._form(params)
        # A checkbox: absent from a submitted form means unchecked; absent from a plain GET
        # means true.
        if request.method == "POST":
            email_verified = params.get("email_verified") == "true"
        else:
            email_verified = params.get("email_verified", "true") == "true"
        hd = params.get("hd_claim")
        if hd is None:
            hd = email.rsplit("@", 1)[-1] if "@" in email else None
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(
                client_id=self.client_id,
                redirect_uri=redirect_uri,
                nonce=params.get("nonce"),
                email=email,
                email_verified=email_verified,
                hd=hd or None,
                code_challenge=params.get("code_challenge"),
                code_challenge_method=params.get("code_challenge_method"),
                expires_at=time.time() + CODE_LIFETIME_SECONDS,
            )
        back = {"code": code}
        if params.get("state") is not None:
            back["state"] = params["state"]
        return Response(status=302, headers={"Location": _with_query(redirect_uri, back)})

    def _form(self, params: MultiDict) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items(multi=True)
            if k not in ("email", "email_verified", "hd_claim")
        )
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Mock OIDC sign-in</title>
<style>body{{font-family:sans-serif;max-width:34em;margin:3em auto}}
label{{display:block;margin:.6em 0}}</style>
</head><body><h1>Mock OIDC provider</h1>
<p>Local development only. Choose who to sign in as; the ID token will say so.</p>
<form method="post" action="/authorize">{hidden}
<label>Email <input name="email" type="email" required autofocus size="32"></label>
<label><input name="email_verified" type="checkbox" value="true" checked> email verified</label>
<label>hd claim (blank: the email's domain) <input name="hd_claim" size="20"></label>
<button type="submit">Sign in</button></form></body></html>"""
        return Response(page, mimetype="text/html")

    def _client_credentials(self, request: Request) -> tuple[str | None, str | None]:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username, auth.password
        return request.form.get("client_id"), request.form.get("client_secret")

    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        client_id, client_secret = self._client_credentials(request)
        if client_id != self.client_id or not secrets.compare_digest(
            (client_secret or "").encode(), self.client_secret.encode()
        ):
            return _error("invalid_client", "client authentication failed", 401)
        if request.form.get("grant_type") != "authorization_code":
            return _error("unsupported_grant_type", "only authorization_code")
        with self._lock:
            grant = self._grants.pop(request.form.get("code", ""), None)  # single use
        if grant is None or grant.expires_at < time.time():
            return _error("invalid_grant", "unknown, used or expired code")
        if request.form.get("redirect_uri") != grant.redirect_uri:
            return _error("invalid_grant", "redirect_uri does not match the authorization request")
        if grant.code_challenge:
            verifier = request.form.get("code_verifier") or ""
            if grant.code_challenge_method == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            else:
                expected = verifier
            if not verifier or not secrets.compare_digest(expected, grant.code_challenge):
                return _error("invalid_grant", "PKCE verification failed")
        body = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid email profile",
        }
        if not self.omit_id_token:
            body["id_token"] = self.id_token(grant)
        return _json(body)

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "mock-" + hashlib.sha256(grant.email.lower().encode()).hexdigest()[:20],
            "aud": grant.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_SECONDS,
            "email": grant.email,
            "email_verified": grant.email_verified,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if grant.hd:
            claims["hd"] = grant.hd
        claims.update(self.claim_overrides)
        # An override of None drops the claim.
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.key
        if self.sign_with_unknown_key:
            if self._rogue_key is None:
                # Same kid, different key: only a real signature check can tell.
                self._rogue_key = _new_signing_key()
            key = self._rogue_key
        return jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, key)
