"""Internal API keys: `Authorization: <key>` plus `or-internal-api-auth-secret: <secret>`.

The key is a public identifier and is stored only as its SHA-256 digest (so the table never holds
a usable key, yet a lookup stays one indexed equality). The secret is stored as a salted scrypt
hash and compared in constant time. Every function here runs inside the caller's transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationError
from app.models.base import utcnow
from app.models.identity import ROLES, ApiKey

# scrypt cost: ~16 MiB and a few tens of milliseconds per check; enough to make offline guessing
# of a leaked hash expensive without making every API call slow.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# Upper bounds accepted when parsing a stored hash, so a corrupt row cannot make us allocate
# gigabytes.
_MAX_N = 2**20
_MAX_RP = 32


def generate_key() -> str:
    return "ork_" + secrets.token_urlsafe(24)


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Encode as "scrypt$n$r$p$salt$hash" (salt and hash base64url without padding)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_HASH_BYTES, maxmem=2**26)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n_text, r_text, p_text, salt_text, hash_text = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = _unb64(salt_text), _unb64(hash_text)
    except (ValueError, TypeError):
        return False
    if scheme != "scrypt" or not (1 < n <= _MAX_N and 0 < r <= _MAX_RP and 0 < p <= _MAX_RP):
        return False
    try:
        actual = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**28)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", details={"role": role})


def get_api_key(session: Session, name: str) -> ApiKey:
    api_key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if api_key is None:
        raise NotFound(f"no API key named {name!r}")
    return api_key


def create_api_key(
    session: Session,
    *,
    name: str,
    role: str,
    key: str | None = None,
    secret: str | None = None,
) -> tuple[ApiKey, str, str]:
    """Create a key; returns (row, key, secret).

    The plain key and secret exist only in the result (random ones unless given).
    """
    _check_role(role)
    name = name.strip()
    if not name:
        raise ValidationError("an API key needs a name")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise Conflict(f"an API key named {name!r} already exists")
    key = key or generate_key()
    secret = secret or generate_secret()
    if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == key_digest(key))) is not None:
        # Deliberately vague: never confirm which other key holds this value.
        raise Conflict("that key value is already in use")
    api_key = ApiKey(name=name, key_hash=key_digest(key), secret_hash=hash_secret(secret), role=role)
    session.add(api_key)
    session.flush()
    return api_key, key, secret


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name)))


def revoke_api_key(session: Session, name: str) -> ApiKey:
    """Revoke at once (idempotent: a second revoke keeps the first timestamp)."""
    api_key = get_api_key(session, name)
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.flush()
    return api_key


def rotate_api_key(session: Session, name: str, *, secret: str | None = None) -> tuple[ApiKey, str]:
    """Give the key a new secret; the old secret stops working when the caller commits."""
    api_key = get_api_key(session, name)
    if api_key.revoked_at is not None:
        raise Conflict(f"API key {name!r} is revoked; create a new one instead")
    secret = secret or generate_secret()
    api_key.secret_hash = hash_secret(secret)
    session.flush()
    return api_key, secret


# Secrets this process has already verified, keyed by the stored hash they matched. Only a keyed
# digest (with a per-process random key) is kept, never the secret. A rotated key has a new stored
# hash, so its old secret misses; a wrong secret always misses and pays the full scrypt cost;
# revocation is read from the row on every request. This spares automation that calls in a loop
# one scrypt (~25 ms of CPU) per request.
_PROCESS_KEY = secrets.token_bytes(32)
_VERIFIED: dict[str, bytes] = {}
_VERIFIED_MAX = 1024


def _verify_with_cache(secret: str, stored: str) -> bool:
    tag = hmac.new(_PROCESS_KEY, secret.encode(), hashlib.sha256).digest()
    cached = _VERIFIED.get(stored)
    if cached is not None and hmac.compare_digest(cached, tag):
        return True
    if not verify_secret(secret, stored):
        return False
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[stored] = tag
    return True


def find_live_key(session: Session, key: str) -> ApiKey | None:
    """The unrevoked key with this value, by its SHA-256 digest (one indexed lookup, no scrypt).

    An unknown or revoked key is answered without touching any secret hash: the key is an
    identifier, not a credential, so rejecting it quickly reveals nothing worth guessing, and
    random keys cannot make the service burn CPU.
    """
    api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_digest(key)))
    if api_key is None or api_key.revoked_at is not None:
        return None
    return api_key


def accept_secret(session: Session, api_key: ApiKey, secret: str) -> bool:
    """Check `secret` against a live key (scrypt unless verified before); records the use."""
    if not _verify_with_cache(secret, api_key.secret_hash):
        return False
    api_key.last_used_at = utcnow()
    session.flush()
    return True


def authenticate_api_key(session: Session, key: str, secret: str) -> ApiKey | None:
    """The live key matching both values, with last_used_at recorded; None otherwise."""
    api_key = find_live_key(session, key)
    if api_key is None or not accept_secret(session, api_key, secret):
        return None
    return api_key
