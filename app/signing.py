"""HMAC-SHA256 signatures shared by outgoing webhooks and incoming CRM triggers.

Header format: `X-Onramp-Signature: sha256=<hex digest of the raw body>`.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Onramp-Signature"
_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header_value: str | None) -> bool:
    if not header_value or not header_value.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header_value.strip())
