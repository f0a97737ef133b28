"""Which PostgreSQL server tests and rehearsals use (one rule, shared by tests/conftest.py).

First match wins: TEST_DATABASE_URL, then DATABASE_URL (the same server as the service; callers
create their own database on it), else the embedded PostgreSQL under instance/ (started if needed).
The URL returned points at the server; callers replace its database name with their own.
"""

from __future__ import annotations

import os

from app.config import REPO_ROOT, normalize_database_url


def server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return normalize_database_url(url)
    from app.embedded_db import ensure_server

    return ensure_server(REPO_ROOT / "instance").url("postgres")
