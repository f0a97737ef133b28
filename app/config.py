"""Settings read from the environment once, at start-up.

Everything the service needs from its environment lives here so that the rest of the code takes a
plain `Config` object (tests build one directly instead of patching `os.environ`).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
GOOGLE_METADATA_URL = "https://accounts.google.com/.well-known/openid-configuration"


def normalize_database_url(url: str) -> str:
    """Accept the libpq form users write and pin the psycopg2 driver.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, which is not installed.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def parse_public_base_url(value: str | None) -> str | None:
    """`scheme://host[:port][/prefix]` without a trailing slash, or None when unset.

    Anything else (no scheme or host, credentials, a query or a fragment) stops start-up: a
    redirect URI built from a wrong base would only fail later, at the provider.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.username is None
            and parts.password is None
            and not parts.query
            and not parts.fragment
        )
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        valid = False
    if not valid:
        raise RuntimeError(f"PUBLIC_BASE_URL must look like https://host[:port][/prefix], not {value!r}")
    return value.rstrip("/")


@dataclass(frozen=True)
class Config:
    # None means "start the embedded PostgreSQL under instance/".
    database_url: str | None = None
    instance_dir: Path = REPO_ROOT / "instance"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    environment: str = "development"
    release: str | None = None
    sentry_dsn: str | None = None
    oidc_metadata_url: str = GOOGLE_METADATA_URL
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    admin_email_domains: tuple[str, ...] = ()
    # Where browsers reach the service; the OIDC redirect URI is built from it, never from the
    # request's Host header. Required for sign-in outside development.
    public_base_url: str | None = None
    smtp_url: str | None = None
    email_from: str = "onramp@localhost"
    # Session cookie: Secure everywhere but local development.
    session_cookie_secure: bool = False
    session_idle_minutes: int = 60
    session_absolute_hours: int = 12
    # Server-side guards for every pooled connection: a stuck client must not hold row locks,
    # and an idle transaction holding a snapshot slows every claim.
    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 30_000
    idle_in_transaction_timeout_ms: int = 60_000
    # Outbound HTTP from workflow steps and notification delivery.
    http_timeout_seconds: float = 5.0
    # Engine tasks per retry job: at most this many workers (or worker slots) drain one job at once.
    retry_job_lanes: int = 8
    max_content_length: int = 1024 * 1024
    testing: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        database_url = env.get("DATABASE_URL") or None
        environment = env.get("ONRAMP_ENV", "development")
        secret_key = env.get("SECRET_KEY")
        if not secret_key:
            if environment != "development":
                raise RuntimeError("SECRET_KEY must be set outside development")
            # A stable dev key kept under instance/ so sessions survive restarts of `make run`.
            secret_key = _instance_secret(Path(env.get("ONRAMP_INSTANCE_DIR", REPO_ROOT / "instance")))
        return cls(
            database_url=normalize_database_url(database_url) if database_url else None,
            instance_dir=Path(env.get("ONRAMP_INSTANCE_DIR", REPO_ROOT / "instance")),
            secret_key=secret_key,
            environment=environment,
            release=env.get("ONRAMP_RELEASE") or None,
            sentry_dsn=env.get("SENTRY_DSN") or None,
            oidc_metadata_url=env.get("OIDC_METADATA_URL") or GOOGLE_METADATA_URL,
            oidc_client_id=env.get("OIDC_CLIENT_ID") or None,
            oidc_client_secret=env.get("OIDC_CLIENT_SECRET") or None,
            admin_email_domains=_list(env.get("ADMIN_EMAIL_DOMAINS")),
            public_base_url=parse_public_base_url(env.get("PUBLIC_BASE_URL")),
            smtp_url=env.get("SMTP_URL") or None,
            email_from=env.get("EMAIL_FROM", "onramp@localhost"),
            session_cookie_secure=_bool(env.get("SESSION_COOKIE_SECURE"), environment != "development"),
            http_timeout_seconds=float(env.get("HTTP_TIMEOUT_SECONDS", "5")),
            retry_job_lanes=max(1, int(env.get("RETRY_JOB_LANES") or 8)),
        )


def _instance_secret(instance_dir: Path) -> str:
    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
