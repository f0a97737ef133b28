"""OpenID Connect sign-in (authorization-code flow) through Authlib.

The provider comes from its discovery document (OIDC_METADATA_URL, Google's by default). Authlib
keeps `state`, `nonce` and the PKCE verifier in the signed cookie session between /auth/login and
/auth/callback, exchanges the code over HTTPS and verifies the ID token's signature against the
provider's JWKS. On top of that we insist on: issuer and audience (explicitly -- Authlib alone
does not check `aud`), expiry, a verified email, and an allowed email domain (and, for Google,
the Workspace `hd` claim).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import current_app, url_for
from joserfc.errors import JoseError

from app.config import Config
from app.errors import AppError, Forbidden, Unauthorized

log = logging.getLogger(__name__)

CLIENT_NAME = "onramp_provider"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
# Clock skew tolerated on exp/iat.
LEEWAY_SECONDS = 60


class SignInNotConfigured(AppError):
    status_code = 503
    code = "sign_in_not_configured"
    message = "Browser sign-in is not configured"


class SignInFailed(Unauthorized):
    code = "sign_in_failed"
    message = "Sign-in failed"


class SignInRefused(Forbidden):
    code = "sign_in_refused"
    message = "This account may not sign in here"


@dataclass(frozen=True)
class VerifiedIdentity:
    email: str
    subject: str
    issuer: str


def missing_settings(config: Config) -> list[str]:
    missing = []
    if not config.oidc_client_id:
        missing.append("OIDC_CLIENT_ID")
    if not config.oidc_client_secret:
        missing.append("OIDC_CLIENT_SECRET")
    # Fail closed: with no domain list nobody's email domain is allowed.
    if not config.admin_email_domains:
        missing.append("ADMIN_EMAIL_DOMAINS")
    # Outside development the redirect URI must not follow a Host header the client chose.
    if not config.public_base_url and config.environment != "development":
        missing.append("PUBLIC_BASE_URL")
    return missing


def _config() -> Config:
    return current_app.config["ONRAMP"]


def get_client():
    """The Authlib client for this app, registered on first use (discovery is fetched lazily)."""
    config = _config()
    missing = missing_settings(config)
    if missing:
        raise SignInNotConfigured(f"Browser sign-in needs {', '.join(missing)}", details={"missing": missing})
    oauth = current_app.extensions.get("authlib.integrations.flask_client")
    if oauth is None:
        oauth = OAuth(current_app)
        oauth.register(
            CLIENT_NAME,
            server_metadata_url=config.oidc_metadata_url,
            client_id=config.oidc_client_id,
            client_secret=config.oidc_client_secret,
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "default_timeout": config.http_timeout_seconds,
            },
        )
    return oauth.create_client(CLIENT_NAME)


def callback_url(config: Config) -> str:
    """PUBLIC_BASE_URL + /auth/callback; only in development may the request's host stand in."""
    if config.public_base_url:
        return config.public_base_url + url_for("auth.callback")
    return url_for("auth.callback", _external=True)


def authorize_redirect():
    """302 to the provider; state, nonce and PKCE verifier are stored in the cookie session."""
    client = get_client()  # refuses (503) outside development without PUBLIC_BASE_URL
    redirect_uri = callback_url(_config())
    extra = {}
    domains = _config().admin_email_domains
    if len(domains) == 1:
        # Google shows only accounts of that Workspace domain; a hint, never a check.
        extra["hd"] = domains[0]
    try:
        return client.authorize_redirect(redirect_uri, **extra)
    except (requests.RequestException, ValueError) as exc:
        log.warning("OIDC discovery failed: %s", type(exc).__name__)
        raise SignInNotConfigured("The sign-in provider could not be reached") from exc


def finish_sign_in() -> VerifiedIdentity:
    """Complete the code exchange for the current callback request and verify the ID token."""
    client = get_client()
    config = _config()
    try:
        metadata = client.load_server_metadata()
        issuer = metadata.get("issuer")
        if not issuer:
            raise SignInFailed("The provider's discovery document names no issuer")
        claims_options = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": config.oidc_client_id},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        token = client.authorize_access_token(claims_options=claims_options, leeway=LEEWAY_SECONDS)
    except OAuthError as exc:
        # Includes a missing/wrong `state` (MismatchingStateError) and provider-reported errors.
        reason = exc.error or "oauth_error"
        raise SignInFailed("Sign-in failed", details={"reason": reason}) from exc
    except JoseError as exc:
        # Bad signature, unknown key, wrong iss/aud/nonce, expired token.
        raise SignInFailed("The identity token could not be verified", details={"reason": exc.error}) from exc
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise SignInFailed("The sign-in provider could not be reached", details={"reason": type(exc).__name__}) from exc
    claims = token.get("userinfo")
    if not claims:
        # No ID token (or no nonce in our state): nothing was verified, so nothing is granted.
        raise SignInFailed("The provider returned no identity token", details={"reason": "no_id_token"})
    return check_claims(dict(claims), issuer=issuer, allowed_domains=config.admin_email_domains)


def _is_true(value: object) -> bool:
    # Some providers send booleans as strings.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _refuse(message: str, reason: str) -> SignInRefused:
    return SignInRefused(message, details={"reason": reason})


def check_claims(claims: dict, *, issuer: str, allowed_domains: tuple[str, ...]) -> VerifiedIdentity:
    """Checks on already signature-verified claims: verified email in an allowed domain."""
    allowed = {d.lower() for d in allowed_domains}
    email = claims.get("email")
    if not isinstance(email, str) or email.count("@") != 1:
        raise _refuse("The identity token carries no email address", "no_email")
    email = email.strip().lower()
    if not _is_true(claims.get("email_verified")):
        raise _refuse("The email address is not verified", "email_not_verified")
    domain = email.rsplit("@", 1)[1]
    if domain not in allowed:
        raise _refuse("This email domain may not sign in here", "domain_not_allowed")
    hd = claims.get("hd")
    if issuer in GOOGLE_ISSUERS and not hd:
        # A consumer Google account can carry any verified email; only Workspace accounts have hd.
        raise _refuse("Sign in with your organisation's account", "hd_missing")
    if hd is not None and str(hd).lower() not in allowed:
        raise _refuse("This account's domain may not sign in here", "hd_not_allowed")
    return VerifiedIdentity(email=email, subject=str(claims.get("sub")), issuer=issuer)
